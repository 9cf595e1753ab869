"""Each loop's prompts extend the prompt before them (prefix caches reuse them), and each prompt's reply, in the
format it asks for, is read back by the parser beside it."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.runtime.verdict import Verdict
from thinkloop.strategies.base import ANSWER_FORMAT
from thinkloop.strategies.cot import RETRY_PROMPT, ChainOfThought
from thinkloop.strategies.critique import CritiqueRevise
from thinkloop.strategies.critique_prompts import CRITIC_SYSTEM, NO_ISSUES, REVISE_PROMPT, Critic
from thinkloop.strategies.tree_prompts import Proposal, Valuation
from thinkloop.strategies.tree_search import TreeSearch
from thinkloop.types import ChatRequest, Message
from thinkloop.verifiers import MathAnswerVerifier
from thinkloop.verifiers.extract import extract_answer


class RejectWithFeedback:
    """Rejects every answer, with feedback naming the round, so each round's prompt differs."""

    def __init__(self) -> None:
        self.rounds = itertools.count(1)

    async def verify(self, question: str, candidate: Any, ctx: Any = None) -> Verdict:
        return Verdict.reject(f"Round {next(self.rounds)} is wrong.", score=0.1)


def numbered_replies() -> ScriptedBackend:
    counter = itertools.count(1)
    return ScriptedBackend(lambda request: f"Working {next(counter)}. Answer: {next(counter)}")


def extends(earlier: ChatRequest, later: ChatRequest) -> bool:
    return later.messages[: len(earlier.messages)] == earlier.messages


# --- the loops: each prompt extends the one before it ------------------------------------------------------
def test_cot_with_history_all_appends_each_attempt_and_its_feedback() -> None:
    backend = numbered_replies()
    result = ChainOfThought(max_rounds=4, history="all").run_sync(
        "What is 2 + 2?", backend=backend, verifier=RejectWithFeedback()
    )
    assert result.stop_reason == "max_rounds"
    requests = backend.requests
    assert len(requests) == 4
    assert all(extends(a, b) and len(b.messages) == len(a.messages) + 2 for a, b in itertools.pairwise(requests))
    # What the model is asked is unchanged: its attempt, the check's feedback, try again in the answer format.
    replies = [n.text for n in result.graph.nodes() if n.kind == "generate"]
    appended = requests[-1].messages[2:]
    assert [m.role for m in appended] == ["assistant", "user"] * 3
    assert [m.content for m in appended[0::2]] == replies[:3]
    assert [m.content for m in appended[1::2]] == [
        RETRY_PROMPT.format(feedback=f"Round {i} is wrong.") for i in (1, 2, 3)
    ]
    assert appended[1].content == f"Round 1 is wrong. Try again. {ANSWER_FORMAT}"


def test_critique_with_history_all_appends_each_attempt_and_its_critique() -> None:
    backend = numbered_replies()
    result = CritiqueRevise(max_rounds=3, history="all").run_sync(
        "What is 2 + 2?", backend=backend, verifier=RejectWithFeedback()
    )
    assert result.stop_reason == "max_rounds"
    requests = backend.requests
    assert len(requests) == 4  # the answer and three revisions; the verifier's feedback is the critique
    assert all(extends(a, b) and len(b.messages) == len(a.messages) + 2 for a, b in itertools.pairwise(requests))
    last = requests[-1].messages
    assert last[-1].content == REVISE_PROMPT.format(critique="Round 3 is wrong.")
    assert last[-1].content.startswith("A reviewer found these problems:\nRound 3 is wrong.\n\nWrite a corrected")
    attempts = [n.text for n in result.graph.nodes() if n.kind in ("generate", "revise")]
    assert [m.content for m in last[2::2]] == attempts[:3]
    assert {m.role for m in last[2::2]} == {"assistant"}


def test_with_a_model_critic_the_revisions_extend_each_other_and_the_critic_sees_the_latest_solution() -> None:
    counter = itertools.count(1)

    def reply(request: ChatRequest) -> str:
        if request.messages[0].content == CRITIC_SYSTEM:
            return f"Step {next(counter)} is wrong."
        return f"Attempt {next(counter)}. Answer: 5"

    backend = ScriptedBackend(reply)
    CritiqueRevise(max_rounds=2, history="all").run_sync("What is 2 + 3?", backend=backend)
    main = [r for r in backend.requests if r.messages[0].content != CRITIC_SYSTEM]
    critic = [r for r in backend.requests if r.messages[0].content == CRITIC_SYSTEM]
    assert len(main) == 3 and len(critic) == 2
    assert all(extends(a, b) for a, b in itertools.pairwise(main))
    for index, request in enumerate(critic):
        # each critic prompt shows the solution just written (the next revision's last attempt), and only it
        solution = main[index + 1].messages[-2].content
        assert request.messages[1].content == Critic.user("What is 2 + 3?", solution)
        assert main[index + 1].messages[-1].content == REVISE_PROMPT.format(critique=f"Step {2 * index + 2} is wrong.")


@pytest.mark.parametrize(
    "strategy",
    [ChainOfThought(max_rounds=3), CritiqueRevise(max_rounds=2), ChainOfThought(max_rounds=3, history="last")],
)
def test_by_default_only_the_latest_attempt_and_its_feedback_are_shown(strategy: ChainOfThought) -> None:
    backend = numbered_replies()
    strategy.run_sync("What is 2 + 2?", backend=backend, verifier=RejectWithFeedback())
    first, second, third = backend.requests
    assert len(second.messages) == len(third.messages) == len(first.messages) + 2
    assert third.messages[:2] == first.messages
    assert third.messages[2].content == "Working 3. Answer: 4"  # the second attempt, not the first
    assert "Round 2 is wrong." in third.messages[3].content


def tree_backend() -> ScriptedBackend:
    steps = itertools.count(1)

    def reply(request: ChatRequest) -> str:
        if request.messages[0].content == Valuation.system:
            return "SCORE: 7"
        depth = len(re.findall(r"^Step \d+:", request.messages[-1].content, re.MULTILINE))
        return f"Answer: {depth}" if depth == 2 else f"step {next(steps)}"

    return ScriptedBackend(reply)


def test_a_tree_childs_prompts_extend_its_parents_path() -> None:
    backend = tree_backend()
    TreeSearch(mode="beam", branching=2, beam_width=2, max_depth=3).run_sync("Count.", backend=backend)
    proposals = [r for r in backend.requests if r.messages[0].content == Proposal.system]
    paths = [tuple(re.findall(r"^Step \d+: (.*)$", r.messages[-1].content, re.MULTILINE)) for r in proposals]
    assert [len(p) for p in paths] == [0, 1, 1, 2, 2]  # the root, two children, the beam's two grandchildren
    for index, (request, path) in enumerate(zip(proposals, paths, strict=True)):
        assert request.messages == Proposal.messages("Count.", path)
        assert not path or path[:-1] in paths[:index]  # grown from a path proposed from before
    values = [r.messages[-1].content for r in backend.requests if r.messages[0].content == Valuation.system]
    assert len(values) == 2 + 4 + 2  # every distinct proposed step valued (a pair of equal answers once)
    for path in paths[1:]:
        assert Valuation.user("Count.", path) in values


@given(st.lists(st.text(max_size=20).map(str.strip).filter(bool), min_size=2, max_size=6), st.text(max_size=30))
def test_a_childs_prompts_are_its_parents_with_one_step_appended_before_the_closing_line(
    steps: list[str], question: str
) -> None:
    for depth in range(1, len(steps)):
        parent, child = Proposal.messages(question, steps[:depth]), Proposal.messages(question, steps[: depth + 1])
        assert parent[0] == child[0]
        shared = parent[1].content.removesuffix("\n\nNext step:")
        assert child[1].content.startswith(shared + f"\nStep {depth + 1}: {steps[depth]}")
        parent_value = Valuation.user(question, steps[:depth])
        assert Valuation.user(question, steps[: depth + 1]) == f"{parent_value}\n{steps[depth]}"


# --- each prompt's reply format round-trips through its parser ---------------------------------------------
step_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60).filter(
    lambda s: not Proposal.FINAL.search(s)
)


@given(step_text)
def test_a_proposed_step_is_read_back_and_is_final_only_when_it_states_the_answer(text: str) -> None:
    step, final = Proposal.read(f"  {text}\n")
    assert (step, final) == (text.strip(), False)


@given(step_text, st.integers(-10_000, 10_000))
def test_a_step_ending_in_the_asked_answer_line_ends_the_path_with_that_answer(text: str, number: int) -> None:
    assert "'Answer: <final answer>'" in Proposal.system
    step, final = Proposal.read(f"{text}\nAnswer: {number}")
    assert final
    assert extract_answer(step) == str(number)


@given(st.integers(0, 10), st.sampled_from(["SCORE: {}", "SCORE: {}\n", "**SCORE:** {}", "SCORE: {}/10"]))
def test_the_score_the_value_prompt_asks_for_is_read_as_a_fraction(score: int, form: str) -> None:
    assert "'SCORE: N'" in Valuation.system
    assert Valuation.read(form.format(score)) == pytest.approx(score / 10)


@given(st.text(max_size=40).filter(lambda s: not re.search(r"score|rating|\d", s, re.IGNORECASE)))
def test_a_value_reply_without_a_score_reads_as_none_not_zero(reply: str) -> None:
    assert Valuation.read(reply) is None


@given(
    st.text(" \t\n.!'\"*", max_size=4),
    st.text(" \t\n.!'\"*", max_size=4),
    st.sampled_from([NO_ISSUES, NO_ISSUES.lower(), "No issues"]),
)
def test_the_critics_all_clear_is_read_with_any_punctuation_around_it(before: str, after: str, clear: str) -> None:
    assert f"'{NO_ISSUES}'" in Critic.system
    assert Critic.all_clear(f"{before}{clear}{after}")


@given(st.text(max_size=40).filter(lambda s: any(c.isalnum() for c in s)))
def test_a_critique_with_anything_besides_the_all_clear_is_not_one(extra: str) -> None:
    assert not Critic.all_clear(f"Step 1 has no issues, but {extra}")
    assert not Critic.all_clear(f"{NO_ISSUES} {extra}")


@given(st.integers(-1000, 1000))
def test_a_revision_in_the_asked_format_is_read_by_the_strategy(number: int) -> None:
    backend = ScriptedBackend([f"Work.\nAnswer: {number + 1}", f"Fixed.\nAnswer: {number}"])
    result = CritiqueRevise(max_rounds=1).run_sync("q", backend=backend, verifier=MathAnswerVerifier(str(number)))
    assert ANSWER_FORMAT in backend.requests[-1].messages[-1].content
    assert (result.answer, result.stop_reason) == (str(number), "accepted")


# --- on the real model: each revision reuses the whole previous prompt -------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("spec", ["cot:max_rounds=3,history=all", "critique:max_rounds=2,history=all"])
@pytest.mark.anyio
async def test_on_the_embedded_model_each_round_reuses_the_previous_prompt(smollm2: Any, spec: str) -> None:
    from thinkloop.strategies.registry import build_strategy

    strategy = build_strategy(f"{spec},max_tokens=16,temperature=0")
    result = await strategy.run("What is 17 * 23?", backend=smollm2, verifier=MathAnswerVerifier("-1"))
    calls = [n for n in result.graph.nodes() if n.kind in ("generate", "revise")]
    assert len(calls) == 3
    usages = [n.completion.usage for n in calls]
    for before, after in itertools.pairwise(usages):
        # the whole previous prompt (two tokens at most are evaluated again: the cache's exactness rule)
        assert (after.cached_prompt_tokens or 0) >= (before.prompt_tokens or 0) - 2
    sent = sum(u.prompt_tokens or 0 for u in usages)
    evaluated = sent - sum(u.cached_prompt_tokens or 0 for u in usages)
    assert evaluated <= 0.7 * sent


def test_messages_are_not_rewritten_between_rounds() -> None:
    """Guard for the order rule itself: the system prompt and question come first in every round."""
    backend = numbered_replies()
    ChainOfThought(max_rounds=2).run_sync("q", backend=backend, verifier=RejectWithFeedback())
    first, second = backend.requests
    assert first.messages == second.messages[:2]
    assert second.messages[2] == Message(role="assistant", content="Working 1. Answer: 2")
