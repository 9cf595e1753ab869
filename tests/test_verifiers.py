"""Format checks, reference answers, the LLM judge and the combinators."""

from __future__ import annotations

import re

import anyio
import pytest

from thinkloop import Budget, BudgetExhausted, ConfigurationError, ScriptedBackend, Verdict
from thinkloop.runtime.result import Candidate
from thinkloop.strategies.cot import ChainOfThought
from thinkloop.types import ChatRequest
from thinkloop.verifiers import (
    AllOf,
    AnswerPresent,
    AnyOf,
    FormatVerifier,
    LLMJudge,
    MathAnswerVerifier,
    Verifier,
    Weighted,
    parse_verdict,
)
from thinkloop.verifiers.judge import JUDGE_SYSTEM

pytestmark = pytest.mark.anyio


def candidate(text: str, answer: str | None = None, node_id: int | None = None) -> Candidate:
    return Candidate(text=text, answer=answer, node_id=node_id)


class Fixed:
    """A verifier with a fixed verdict that counts its calls (and can wait, to show concurrency)."""

    def __init__(self, verdict: Verdict, *, delay: float = 0.0) -> None:
        self.verdict = verdict
        self.delay = delay
        self.calls = 0
        self.running = 0
        self.max_running = 0

    async def verify(self, question: str, candidate: Candidate, ctx: object = None) -> Verdict:
        self.calls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.delay:
                await anyio.sleep(self.delay)
        finally:
            self.running -= 1
        return self.verdict


def test_every_builtin_verifier_satisfies_the_protocol() -> None:
    for verifier in (
        AnswerPresent(),
        FormatVerifier("x"),
        MathAnswerVerifier("1"),
        LLMJudge(),
        AllOf(AnswerPresent()),
        AnyOf(AnswerPresent()),
        Weighted([(AnswerPresent(), 1.0)]),
    ):
        assert isinstance(verifier, Verifier)


# --- format checks ------------------------------------------------------------------------------------


async def test_answer_present() -> None:
    assert (await AnswerPresent().verify("q", candidate("So it is 12."))).accepted
    assert (await AnswerPresent().verify("q", candidate("x", answer="A"))).accepted
    missing = await AnswerPresent().verify("q", candidate("I do not know."))
    assert not missing.accepted and missing.score == 0.0
    assert missing.feedback is not None and "Answer: <final answer>" in missing.feedback


async def test_answer_present_numeric_and_pattern() -> None:
    assert (await AnswerPresent(numeric=True).verify("q", candidate("Answer: $1,200"))).accepted
    not_number = await AnswerPresent(numeric=True).verify("q", candidate("Answer: x + 1"))
    assert not not_number.accepted and "is not a number" in (not_number.feedback or "")
    choice = AnswerPresent(pattern=r"[A-E]")
    assert (await choice.verify("q", candidate("The answer is (C)."))).accepted
    assert not (await choice.verify("q", candidate("The answer is F."))).accepted


def test_a_bad_pattern_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid regular expression"):
        AnswerPresent(pattern="(")


async def test_format_verifier() -> None:
    verifier = FormatVerifier(r"^Answer: .+$", flags=re.MULTILINE, feedback="End with 'Answer: X'.")
    assert (await verifier.verify("q", candidate("work\nAnswer: 4"))).accepted
    rejected = await verifier.verify("q", candidate("work, 4"))
    assert rejected == Verdict.reject("End with 'Answer: X'.")
    whole = FormatVerifier(r"\d+", fullmatch=True)
    assert (await whole.verify("q", candidate(" 42\n"))).accepted
    assert not (await whole.verify("q", candidate("42 apples"))).accepted


# --- reference answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "reply"),
    [
        ("1200", "The total is $1,200."),
        ("0.75", r"So $\boxed{\frac{3}{4}}$"),
        (r"\frac{\sqrt{2}}{2}", r"Answer: \sqrt{2}/2"),
        ("Natalia sold 72 clips.\n#### 72", "Answer: 72"),
        (18, "Answer: 18 dollars"),
    ],
)
async def test_math_answer_verifier_accepts_equivalent_answers(reference: str, reply: str) -> None:
    assert (await MathAnswerVerifier(reference).verify("q", candidate(reply))).accepted


async def test_math_answer_verifier_rejects_without_revealing_the_reference() -> None:
    verdict = await MathAnswerVerifier("72").verify("q", candidate("Answer: 71"))
    assert not verdict.accepted and verdict.score == 0.0
    assert verdict.feedback == "The answer 71 is not correct."
    missing = await MathAnswerVerifier("72").verify("q", candidate("no idea"))
    assert not missing.accepted and "No final answer" in (missing.feedback or "")


async def test_math_answer_verifier_prefers_the_candidates_own_answer() -> None:
    verdict = await MathAnswerVerifier("5").verify("q", candidate("Answer: 4", answer="5"))
    assert verdict.accepted


def test_math_answer_verifier_needs_a_reference() -> None:
    with pytest.raises(ConfigurationError, match="non-empty reference"):
        MathAnswerVerifier("  ")


# --- LLM judge -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "accepted", "score"),
    [
        ("Looks right.\nVERDICT: CORRECT\nSCORE: 0.8", True, 0.8),
        ("VERDICT: INCORRECT", False, 0.0),
        ("VERDICT: CORRECT", True, 1.0),
        ("**VERDICT:** CORRECT\n**SCORE:** 1", True, 1.0),
        ("verdict: incorrect\nscore: .25", False, 0.25),
    ],
)
def test_parse_verdict(reply: str, accepted: bool, score: float) -> None:
    verdict = parse_verdict(reply)
    assert (verdict.accepted, verdict.score) == (accepted, score)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("It is correct.", "no verdict line"),
        ("The verdict: CORRECT, I think", "no verdict line"),
        ("VERDICT: CORRECT\nVERDICT: INCORRECT", "contradicting verdict lines"),
        ("VERDICT: CORRECT\nSCORE: 1.5", "SCORE '1.5' is not a number from 0 to 1"),
        ("VERDICT: CORRECT\nSCORE: high", "SCORE 'high' is not a number from 0 to 1"),
    ],
)
def test_an_unparseable_judge_reply_is_a_rejection_that_says_so(reply: str, why: str) -> None:
    verdict = parse_verdict(reply)
    assert not verdict.accepted and verdict.score == 0.0
    assert verdict.feedback is not None
    assert verdict.feedback.startswith("Unparseable judge reply") and why in verdict.feedback


def test_the_judges_reasoning_is_the_feedback() -> None:
    verdict = parse_verdict("Step 2 adds wrongly: 3 + 4 is 7, not 8.\nVERDICT: INCORRECT\nSCORE: 0.1")
    assert verdict.feedback == "Step 2 adds wrongly: 3 + 4 is 7, not 8."


def judged_backend(*, verdict_for: str) -> ScriptedBackend:
    """Solutions answer 8 then 7; the judge accepts only ``verdict_for``."""
    answers = iter(["8", "7", "7"])

    def reply(request: ChatRequest) -> str:
        if request.messages[0].content == JUDGE_SYSTEM:
            good = f"Proposed final answer: {verdict_for}\n" in request.messages[-1].content
            return "Checked the steps.\n" + ("VERDICT: CORRECT\nSCORE: 0.9" if good else "VERDICT: INCORRECT")
        return f"3 + 4 = ... Answer: {next(answers)}"

    return ScriptedBackend(reply, name="model")


async def test_the_judge_is_charged_to_the_run_and_recorded_in_the_graph() -> None:
    backend = judged_backend(verdict_for="7")
    result = await ChainOfThought(max_rounds=3).run("What is 3 + 4?", backend=backend, verifier=LLMJudge())
    assert result.answer == "7" and result.stop_reason == "accepted"
    assert result.candidate is not None and result.candidate.score == 0.9
    # Two solutions and two judge calls, all billed to the run.
    assert result.usage.calls == 4 == len(backend.requests)
    judge_calls = [n for n in result.graph.nodes() if n.kind == "verify" and n.request is not None]
    assert len(judge_calls) == 2
    for node in judge_calls:
        (parent,) = node.parents
        assert result.graph.node(parent).kind == "generate"
        assert node.strategy == "llm-judge" and node.status == "done"
    # The rejection's reasoning reached the second attempt as feedback.
    assert "Checked the steps." in backend.requests[2].messages[-1].content


async def test_a_judge_on_its_own_backend_is_still_charged_to_the_run() -> None:
    judge_backend = ScriptedBackend(["VERDICT: CORRECT"], name="judge")
    solver = ScriptedBackend(["Answer: 7"], name="solver")
    result = await ChainOfThought().run("q", backend=solver, verifier=LLMJudge(judge_backend))
    assert result.stop_reason == "accepted"
    assert len(judge_backend.requests) == 1 and len(solver.requests) == 1
    assert result.usage.calls == 2


async def test_a_judge_that_does_not_fit_the_budget_stops_the_run_with_the_best_so_far() -> None:
    backend = judged_backend(verdict_for="7")
    result = await ChainOfThought(max_rounds=3).run(
        "What is 3 + 4?", backend=backend, verifier=LLMJudge(), budget=Budget(calls=1)
    )
    assert result.stop_reason == "budget"
    assert result.usage.calls == 1
    assert result.answer == "8"


async def test_the_judge_needs_a_run_context() -> None:
    with pytest.raises(ConfigurationError, match="LLMJudge needs a run context"):
        await LLMJudge().verify("q", candidate("Answer: 1"))


def test_a_bad_judge_prompt_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("only {question}, {solution} and {answer}")):
        LLMJudge(prompt="Check {solution} against {reference}")
    with pytest.raises(ConfigurationError, match="max_tokens must be at least 1"):
        LLMJudge(max_tokens=0)


async def test_a_judge_reply_without_a_verdict_rejects_the_candidate() -> None:
    backend = ScriptedBackend(["Answer: 7", "Sure, that seems fine."])
    result = await ChainOfThought().run("q", backend=backend, verifier=LLMJudge())
    assert result.candidate is not None and result.candidate.accepted is False
    assert (result.candidate.feedback or "").startswith("Unparseable judge reply")


# --- combinators --------------------------------------------------------------------------------------

YES, NO = Verdict(accepted=True, score=0.9, feedback="fine"), Verdict(accepted=False, score=0.2, feedback="bad")


async def test_all_of() -> None:
    assert await AllOf(Fixed(YES), Fixed(YES)).verify("q", candidate("t")) == Verdict(
        accepted=True, score=0.9, feedback="fine\nfine"
    )
    mixed = await AllOf(Fixed(YES), Fixed(NO)).verify("q", candidate("t"))
    assert (mixed.accepted, mixed.score, mixed.feedback) == (False, 0.2, "fine\nbad")


async def test_any_of() -> None:
    mixed = await AnyOf(Fixed(NO), Fixed(YES)).verify("q", candidate("t"))
    assert (mixed.accepted, mixed.score, mixed.feedback) == (True, 0.9, "fine")
    none = await AnyOf(Fixed(NO), Fixed(NO)).verify("q", candidate("t"))
    assert (none.accepted, none.score, none.feedback) == (False, 0.2, "bad\nbad")


async def test_weighted() -> None:
    verdict = await Weighted([(Fixed(YES), 3.0), (Fixed(NO), 1.0)], threshold=0.7).verify("q", candidate("t"))
    assert verdict.accepted and verdict.score == pytest.approx((3 * 0.9 + 0.2) / 4)
    low = await Weighted({Fixed(YES): 1.0, Fixed(NO): 3.0}, threshold=0.7).verify("q", candidate("t"))
    assert not low.accepted and low.score == pytest.approx((0.9 + 3 * 0.2) / 4)


@pytest.mark.parametrize(
    "build",
    [
        lambda: AllOf(),
        lambda: AnyOf(),
        lambda: AllOf(object()),  # type: ignore[arg-type]
        lambda: Weighted([(Fixed(YES), -1.0)]),
        lambda: Weighted([(Fixed(YES), 0.0)]),
        lambda: Weighted([(Fixed(YES), 1.0)], threshold=2.0),
    ],
)
def test_bad_combinations_are_configuration_errors(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


async def test_parts_run_concurrently() -> None:
    slow = [Fixed(YES, delay=0.05) for _ in range(3)]
    shared = Fixed(YES, delay=0.05)
    await AllOf(*slow).verify("q", candidate("t"))
    await AllOf(shared, shared, shared).verify("q", candidate("t"))
    assert shared.max_running == 3


async def test_sequential_parts_stop_once_the_outcome_is_decided() -> None:
    cheap, costly = Fixed(NO), Fixed(YES)
    verdict = await AllOf(cheap, costly, concurrent=False).verify("q", candidate("t"))
    assert not verdict.accepted and costly.calls == 0
    first, second = Fixed(YES), Fixed(NO)
    assert (await AnyOf(first, second, concurrent=False).verify("q", candidate("t"))).accepted
    assert second.calls == 0


async def test_a_failing_part_raises_its_own_error_not_a_group() -> None:
    class OverBudget:
        async def verify(self, question: str, candidate: Candidate, ctx: object = None) -> Verdict:
            raise BudgetExhausted("no tokens left", resource="tokens")

    with pytest.raises(BudgetExhausted, match="no tokens left"):
        await AllOf(Fixed(YES), OverBudget()).verify("q", candidate("t"))


async def test_a_format_gate_saves_the_judge_call() -> None:
    """AllOf(AnswerPresent(), LLMJudge(), concurrent=False) does not pay a judge for a reply with no answer."""
    backend = ScriptedBackend(["I am not sure.", "VERDICT: CORRECT"])
    gate = AllOf(AnswerPresent(), LLMJudge(), concurrent=False)
    result = await ChainOfThought().run("q", backend=backend, verifier=gate)
    assert len(backend.requests) == 1
    assert result.candidate is not None and result.candidate.accepted is False
