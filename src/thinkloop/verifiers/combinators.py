"""Combining verifiers: all must accept, any may accept, or a weighted score over a threshold.

By default the parts run concurrently (an anyio task group). With ``concurrent=False`` they run in order and
stop as soon as the outcome is decided, so a cheap check placed first saves a costly one (an LLM judge's
tokens) when it already rejects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import anyio

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict, Verifier

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate


async def _run_all(
    verifiers: Sequence[Verifier], question: str, candidate: Candidate, ctx: RunContext | None
) -> list[Verdict]:
    verdicts: list[Verdict | None] = [None] * len(verifiers)

    async def one(index: int, verifier: Verifier) -> None:
        verdicts[index] = await verifier.verify(question, candidate, ctx)

    try:
        async with anyio.create_task_group() as group:
            for index, verifier in enumerate(verifiers):
                group.start_soon(one, index, verifier)
    except BaseExceptionGroup as failure:
        # One part failed (a judge over budget): raise its error as it is, so callers can catch it by type.
        if len(failure.exceptions) == 1:
            raise failure.exceptions[0] from failure
        raise
    return [v for v in verdicts if v is not None]


def _join(verdicts: Sequence[Verdict]) -> str | None:
    parts = [v.feedback for v in verdicts if v.feedback]
    return "\n".join(parts) if parts else None


def _checked(verifiers: Sequence[Verifier], name: str) -> tuple[Verifier, ...]:
    if not verifiers:
        raise ConfigurationError(f"{name} needs at least one verifier")
    for verifier in verifiers:
        if not callable(getattr(verifier, "verify", None)):
            raise ConfigurationError(f"{name}: {verifier!r} is not a verifier (it has no verify method)")
    return tuple(verifiers)


async def _run_until(
    verifiers: Sequence[Verifier], question: str, candidate: Candidate, ctx: RunContext | None, *, accepted: bool
) -> list[Verdict]:
    """Run verifiers one after another until one's verdict is ``accepted`` (so later ones cost nothing)."""
    verdicts = []
    for verifier in verifiers:
        verdicts.append(await verifier.verify(question, candidate, ctx))
        if verdicts[-1].accepted is accepted:
            break
    return verdicts


class AllOf:
    """Accepted when every verifier accepts; the score is the lowest score.

    Feedback joins the parts' feedback, so a reviser sees every complaint.
    """

    def __init__(self, *verifiers: Verifier, concurrent: bool = True) -> None:
        self.verifiers = _checked(verifiers, "AllOf")
        self.concurrent = concurrent

    def __repr__(self) -> str:
        return f"AllOf({', '.join(map(repr, self.verifiers))})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        if self.concurrent:
            verdicts = await _run_all(self.verifiers, question, candidate, ctx)
        else:  # in order, stopping at the first rejection
            verdicts = await _run_until(self.verifiers, question, candidate, ctx, accepted=False)
        return Verdict(
            accepted=all(v.accepted for v in verdicts),
            score=min(v.score for v in verdicts),
            feedback=_join(verdicts),
        )


class AnyOf:
    """Accepted when at least one verifier accepts; the score is the highest score."""

    def __init__(self, *verifiers: Verifier, concurrent: bool = True) -> None:
        self.verifiers = _checked(verifiers, "AnyOf")
        self.concurrent = concurrent

    def __repr__(self) -> str:
        return f"AnyOf({', '.join(map(repr, self.verifiers))})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        if self.concurrent:
            verdicts = await _run_all(self.verifiers, question, candidate, ctx)
        else:  # in order, stopping at the first acceptance
            verdicts = await _run_until(self.verifiers, question, candidate, ctx, accepted=True)
        accepted = any(v.accepted for v in verdicts)
        # An accepted candidate needs no revision advice from the parts that rejected it.
        feedback = _join([v for v in verdicts if v.accepted]) if accepted else _join(verdicts)
        return Verdict(accepted=accepted, score=max(v.score for v in verdicts), feedback=feedback)


class Weighted:
    """A weighted mean of the parts' scores; accepted when it reaches ``threshold``.

    Args:
        weights: ``(verifier, weight)`` pairs or a ``{verifier: weight}`` mapping; weights are non-negative and
            not all zero.
        threshold: the score at which the candidate is accepted.
    """

    def __init__(
        self, weights: Sequence[tuple[Verifier, float]] | Mapping[Verifier, float], *, threshold: float = 0.5
    ) -> None:
        pairs = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
        self.verifiers = _checked([verifier for verifier, _ in pairs], "Weighted")
        self.weights = tuple(float(weight) for _, weight in pairs)
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ConfigurationError(f"Weighted needs non-negative weights, not all zero (got {self.weights})")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigurationError(f"Weighted threshold must be in [0, 1] (got {threshold})")
        self.threshold = threshold

    def __repr__(self) -> str:
        parts = ", ".join(f"({v!r}, {w})" for v, w in zip(self.verifiers, self.weights, strict=True))
        return f"Weighted([{parts}], threshold={self.threshold})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        verdicts = await _run_all(self.verifiers, question, candidate, ctx)
        total = sum(self.weights)
        score = sum(w * v.score for w, v in zip(self.weights, verdicts, strict=True)) / total
        score = min(1.0, max(0.0, score))
        return Verdict(accepted=score >= self.threshold, score=score, feedback=_join(verdicts))
