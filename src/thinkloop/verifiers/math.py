"""Checking an answer against a known reference: numeric and LaTeX equivalence (``math-verify``).

For benchmarks and for tasks with a known answer. The feedback never reveals the reference: a strategy that
re-prompts on it must not be handed the answer.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.checks import ANSWER_FORMAT_HINT, candidate_answer
from thinkloop.verifiers.equivalence import answers_equivalent
from thinkloop.verifiers.extract import extract_answer
from thinkloop.verifiers.normalize import normalize_answer

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate


class MathAnswerVerifier:
    """Accepts a candidate whose final answer equals ``reference``.

    Numbers compare exactly as written (``"1,200"`` equals ``"1200.0"``, ``"0.75"`` equals
    ``"\\frac{3}{4}"``, ``"0.333"`` does not equal ``"1/3"``); LaTeX and expressions compare with
    ``math-verify`` (``"\\frac{\\sqrt{2}}{2}"`` equals ``"\\sqrt{2}/2"``).

    Args:
        reference: the known answer. A whole solution (with ``\\boxed{}`` or ``#### 42``) is accepted too: its
            final answer is extracted.
        tolerance: a relative tolerance for numbers (``None``: exact). Give one only when the reference or the
            answers are known to be rounded.
    """

    def __init__(self, reference: str | int | float, *, tolerance: float | Fraction | None = None) -> None:
        text = str(reference).strip()
        if not text:
            raise ConfigurationError("MathAnswerVerifier needs a non-empty reference answer")
        if tolerance is not None and not 0 <= tolerance < 1:
            raise ConfigurationError(f"MathAnswerVerifier tolerance must be in [0, 1), got {tolerance}")
        extracted = extract_answer(text) if ("\\boxed" in text or "####" in text) else None
        self.reference = extracted if extracted is not None else normalize_answer(text)
        self.tolerance = tolerance

    def __repr__(self) -> str:
        tolerance = "" if self.tolerance is None else f", tolerance={self.tolerance}"
        return f"MathAnswerVerifier({self.reference!r}{tolerance})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        answer = candidate_answer(candidate)
        if answer is None:
            return Verdict.reject(f"No final answer found. {ANSWER_FORMAT_HINT}")
        if answers_equivalent(answer, self.reference, tolerance=self.tolerance):
            return Verdict.accept()
        return Verdict.reject(f"The answer {answer} is not correct.")
