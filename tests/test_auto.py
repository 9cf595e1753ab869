"""``auto``: stops where samples agree, escalates where they do not or a verifier rejects, within the budget,
and says why at every step."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from support import AcceptAnswer
from thinkloop import Auto, Budget
from thinkloop.bench.simulated import WIDE_WRONG, SimulatedBackend, Spread
from thinkloop.runtime.result import Result

QUESTION = "What is the value of item 7?"


def decisions(result: Result) -> list[tuple[str, str]]:
    nodes = [n for n in result.graph.nodes() if n.kind == "decide"]
    assert all(n.text and n.data and n.data["reason"] == n.text for n in nodes)  # every decision says why
    return [(n.data["decision"], n.text) for n in nodes]  # type: ignore[index]


def test_agreeing_samples_stop_after_the_probe() -> None:
    result = Auto(max_tokens=64).run_sync(QUESTION, backend=SimulatedBackend({QUESTION: "459"}, p=1.0))
    assert (result.answer, result.stop_reason, len(result.attempts), result.usage.calls) == ("459", "converged", 3, 1)
    assert decisions(result) == [("stop", "all 3 samples agree on 459: the question looks easy")]


def test_disagreeing_samples_escalate_geometrically_and_every_sample_votes() -> None:
    hard = SimulatedBackend({QUESTION: "459"}, spread=Spread(p=0.3, wrong=WIDE_WRONG), seed=3)
    result = Auto(max_tokens=64, max_samples=24).run_sync(QUESTION, backend=hard)
    made = decisions(result)
    assert made[0][0] == "escalate" and "drawing 3 more" in made[0][1]
    assert [d for d, _ in made[:-1]] == ["escalate"] * (len(made) - 1) and made[-1][0] == "stop"
    drawn = [n.data["samples"] for n in result.graph.nodes() if n.kind == "decide"]  # type: ignore[index]
    assert drawn[:3] == [3, 6, 12] and drawn[-1] == len(result.attempts) <= 24
    assert sum(result.votes.values()) == sum(a.answer is not None for a in result.attempts)  # type: ignore[union-attr]


@settings(max_examples=15, deadline=None)
@given(tokens=st.integers(min_value=1, max_value=3_000), seed=st.integers(0, 50), words=st.integers(0, 60))
def test_the_budget_is_never_exceeded(tokens: int, seed: int, words: int) -> None:
    hard = SimulatedBackend({QUESTION: "459"}, spread=Spread(p=0.3, wrong=WIDE_WRONG), seed=seed, reply_words=words)
    result = Auto(max_tokens=40).run_sync(QUESTION, backend=hard, budget=Budget(tokens=tokens))
    assert result.usage.total_tokens <= tokens
    made = decisions(result)
    assert not made or made[-1][0] == "stop"
    if result.stop_reason == "budget" and made:
        assert "budget" in made[-1][1]


def test_a_rejected_answer_escalates_to_best_of_n_with_the_verifier() -> None:
    backend = SimulatedBackend({QUESTION: "459"}, p=0.5, seed=2)  # seed 2: the first answer is 458
    result = Auto(max_tokens=64, bon_n=8).run_sync(QUESTION, backend=backend, verifier=AcceptAnswer("459"))
    made = decisions(result)
    assert made[0][0] == "escalate"
    assert made[0][1].startswith("the verifier rejected 458 (458 is not right): trying bon:")
    assert made[-1][0] == "stop" and made[-1][1].endswith("found an accepted answer, 459")
    assert (result.answer, result.stop_reason) == ("459", "accepted")
