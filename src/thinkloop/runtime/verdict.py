"""What the runtime asks of a verifier: the :class:`Verifier` protocol and its :class:`Verdict`.

They live here, below the verifiers themselves, because the run's context calls them: the runtime defines
the interface it uses, and :mod:`thinkloop.verifiers` implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate


class Verdict(BaseModel):
    """A verifier's judgement: accepted or not, a score in [0, 1], and feedback a reviser can use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accepted: bool
    score: float = Field(ge=0.0, le=1.0)
    feedback: str | None = None

    @classmethod
    def accept(cls, feedback: str | None = None) -> Verdict:
        return cls(accepted=True, score=1.0, feedback=feedback)

    @classmethod
    def reject(cls, feedback: str | None = None, score: float = 0.0) -> Verdict:
        return cls(accepted=False, score=score, feedback=feedback)


@runtime_checkable
class Verifier(Protocol):
    """Anything with an async ``verify``. ``ctx`` is ``None`` outside a run (plain checks need none)."""

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict: ...
