"""Checking an answer against a known reference: numeric and LaTeX equivalence (``math-verify``).

For benchmarks and for tasks with a known answer. The feedback never reveals the reference: a strategy that
re-prompts on it must not be handed the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.checks import ANSWER_FORMAT_HINT, candidate_answer
from thinkloop.verifiers.extract import answers_equivalent, extract_answer, normalize_answer

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate


class MathAnswerVerifier:
    """Accepts a candidate whose final answer equals ``reference``.

    Numbers compare exactly (``"1,200"`` equals ``"1200.0"``, ``"0.75"`` equals ``"\\frac{3}{4}"``); LaTeX and
    expressions compare with ``math-verify`` (``"\\frac{\\sqrt{2}}{2}"`` equals ``"\\sqrt{2}/2"``).

    Args:
        reference: the known answer. A whole solution (with ``\\boxed{}`` or ``#### 42``) is accepted too: its
            final answer is extracted.
    """

    def __init__(self, reference: str | int | float) -> None:
        text = str(reference).strip()
        if not text:
            raise ConfigurationError("MathAnswerVerifier needs a non-empty reference answer")
        extracted = extract_answer(text) if ("\\boxed" in text or "####" in text) else None
        self.reference = extracted if extracted is not None else normalize_answer(text)

    def __repr__(self) -> str:
        return f"MathAnswerVerifier({self.reference!r})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        answer = candidate_answer(candidate)
        if answer is None:
            return Verdict.reject(f"No final answer found. {ANSWER_FORMAT_HINT}")
        if answers_equivalent(answer, self.reference):
            return Verdict.accept()
        return Verdict.reject(f"The answer {answer} is not correct.")
