"""A score reader that finds the stated score or says there is none (issue 25).

Tree search values its thoughts by the model's own "SCORE: N"; a misread score pruned good thoughts in
silence (``**SCORE:** 9`` read as 0, "Previous score: 2. SCORE: 8" as 0.2, "8.5 out of 10" as 0). A judge's
"SCORE = 0.8" was taken as 1.0.
"""

from __future__ import annotations

import pytest

from thinkloop import Budget, ChatRequest, ScriptedBackend, TreeSearch
from thinkloop.strategies.tree_search import VALUE_SYSTEM
from thinkloop.verifiers.judge import parse_verdict
from thinkloop.verifiers.scores import read_score


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("**SCORE:** 9", 0.9),
        ("Previous score: 2. SCORE: 8", 0.8),
        ("8.5 out of 10", 0.85),
        ("SCORE: 7/10", 0.7),
        ("Score = 6", 0.6),
        ("I would give it 7/10.", 0.7),
        ("SCORE: 10", 1.0),
        ("SCORE: 0", 0.0),
        ("score is 45/100", 0.45),
    ],
)
def test_the_last_stated_score_is_read(reply: str, score: float) -> None:
    assert read_score(reply) == pytest.approx(score)


@pytest.mark.parametrize("reply", ["10 - 4 = 2 is correct.", "", "SCORE: 85", "Looks good to me.", "SCORE: -3"])
def test_no_score_or_one_out_of_range_is_none_never_zero(reply: str) -> None:
    assert read_score(reply) is None


def test_a_judge_score_written_with_an_equals_sign_is_read() -> None:
    verdict = parse_verdict("The steps check out.\nVERDICT: CORRECT\nSCORE = 0.8")
    assert (verdict.accepted, verdict.score) == (True, 0.8)


def _tree_backend(value_reply: str) -> ScriptedBackend:
    def reply(request: ChatRequest) -> str:
        if request.messages[0].content == VALUE_SYSTEM:
            return value_reply
        return "Add 6 and 4 to get 10. Answer: 10"

    return ScriptedBackend(reply)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value_reply", "value"), [("**SCORE:** 9", 0.9), ("Previous score: 2. SCORE: 8", 0.8), ("8.5 out of 10", 0.85)]
)
async def test_tree_values_read_the_stated_score(value_reply: str, value: float) -> None:
    result = await TreeSearch(mode="dfs", branching=1, max_depth=1).run(
        "What is 6 + 4?", backend=_tree_backend(value_reply), budget=Budget(tokens=20_000)
    )
    expand = [n for n in result.graph.nodes() if n.kind == "expand"]
    assert expand and all(n.score == pytest.approx(value) and n.status != "pruned" for n in expand)
    assert result.answer == "10"


@pytest.mark.anyio
async def test_a_value_reply_without_a_score_is_not_pruned_as_zero_and_says_so() -> None:
    result = await TreeSearch(mode="dfs", branching=1, max_depth=1).run(
        "What is 6 + 4?", backend=_tree_backend("10 - 4 = 2 is correct."), budget=Budget(tokens=20_000)
    )
    expand = [n for n in result.graph.nodes() if n.kind == "expand"]
    assert expand and all(n.status != "pruned" for n in expand)
    assert all("stated no score" in (n.data or {}).get("value_unread", "") for n in expand)
    assert result.answer == "10"


def test_the_value_prompt_asks_for_what_the_reader_reads() -> None:
    assert "SCORE: N" in VALUE_SYSTEM and "0" in VALUE_SYSTEM and "10" in VALUE_SYSTEM
    assert read_score("SCORE: 7") == pytest.approx(0.7)
