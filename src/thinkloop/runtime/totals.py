"""A run's totals: what the whole run (sub-strategies included) has spent and the best it has found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from thinkloop.runtime.budget import Reservation
from thinkloop.runtime.result import Candidate
from thinkloop.types import RunUsage, Usage


@dataclass
class RunTotals:
    """What the whole run (sub-strategies included) has spent and found so far."""

    cost: float | None = None
    best: Candidate | None = None
    """The best candidate seen, so a run stopped early still has an answer."""
    provisional: Callable[[], Candidate | None] | None = None
    """The outermost strategy's pick from work in progress (a vote over the samples so far)."""
    _sums: list[int] = field(default_factory=lambda: [0] * 8)
    """calls, calls without usage, failed calls, prompt, completion, reasoning, cached, the part of reasoning
    that was estimated: added up in place."""

    @property
    def usage(self) -> RunUsage:
        calls, unknown, failed, prompt, completion, reasoning, cached, estimated = self._sums
        return RunUsage(
            calls=calls, calls_without_usage=unknown, failed_calls=failed, prompt_tokens=prompt,
            completion_tokens=completion, reasoning_tokens=reasoning, cached_prompt_tokens=cached,
            estimated_reasoning_tokens=estimated,
        )

    def charge(self, usage: Usage, reservation: Reservation) -> None:
        """Add one call's usage (parts clamped to their wholes, as :meth:`RunUsage.add` does) and its cost."""
        sums = self._sums
        prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
        sums[0] += 1
        sums[1] += 0 if usage.known else 1
        sums[3] += prompt
        sums[4] += completion
        reasoning = min(usage.reasoning_tokens or 0, completion)
        sums[5] += reasoning
        sums[6] += min(usage.cached_prompt_tokens or 0, prompt)
        if usage.reasoning_tokens_estimated:
            sums[7] += reasoning
        price = reservation.price
        if price is not None:
            cost = price.cost(usage)
            if cost is None:  # unknown usage: bill the reservation's worst case, never nothing
                cost = reservation.dollars
            self.cost = (self.cost or 0.0) + cost

    def fail(self) -> None:
        """One more call that was sent and failed with nothing billed."""
        self._sums[0] += 1
        self._sums[2] += 1
