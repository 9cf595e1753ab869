"""A number within a tolerance: for answers that are measurements or computations (a pH, a rate), where
exact equality is the wrong test and "2.00" and "2" must both pass.

The reference is the verifier's own: computed by the caller's code (``NumberWithin(ph_of(0.01))``), never
taken from the model.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.checks import candidate_answer
from thinkloop.verifiers.extract import parse_number

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?|-?\.\d+")


def number_in(answer: str | None) -> float | None:
    """The answer as a number: a plain number ("2.0", "$1,200", "3/4"), else the first number in it
    ("pH = 2.0")."""
    if answer is None:
        return None
    value = parse_number(answer)
    if value is not None:
        return float(value)
    match = _NUMBER.search(answer.replace(",", ""))
    return float(match.group()) if match else None


class NumberWithin:
    """Accepts an answer within ``tolerance`` of ``value`` (absolute, or relative with ``relative=True``).

    The score falls off with the distance in units of the tolerance, so best-of-n keeps the nearest miss.
    The feedback says the answer is off, not which way: the model must recompute, not bisect.
    """

    def __init__(self, value: float, *, tolerance: float = 1e-6, relative: bool = False) -> None:
        if not math.isfinite(value) or not (tolerance >= 0):
            raise ConfigurationError(f"NumberWithin needs a finite value and tolerance >= 0 (got {value}, {tolerance})")
        self.value = float(value)
        self.tolerance = float(tolerance)
        self.relative = relative

    def __repr__(self) -> str:
        rel = ", relative=True" if self.relative else ""
        return f"NumberWithin({self.value:g}, tolerance={self.tolerance:g}{rel})"

    @property
    def allowed(self) -> float:
        return self.tolerance * abs(self.value) if self.relative else self.tolerance

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        answer = candidate_answer(candidate)
        got = number_in(answer)
        if got is None or not math.isfinite(got):
            return Verdict.reject("No numeric final answer found. Finish with a last line 'Answer: <number>'.")
        distance = abs(got - self.value)
        if distance <= self.allowed:
            return Verdict.accept()
        score = 1.0 / (1.0 + distance / max(self.allowed, 1e-12))
        return Verdict.reject(
            f"The answer {got:g} is not within {self.allowed:g} of the correct value. Recompute it step by step.",
            score=min(score, 0.99),
        )
