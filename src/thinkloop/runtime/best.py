"""The best answer a run has found so far, kept for the whole run (sub-strategies included), so a run stopped
early (a deadline, a spent budget) still returns one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from thinkloop.runtime.result import Candidate


@dataclass
class BestSoFar:
    """The best candidate seen, and the outermost strategy's way to pick one from work in progress."""

    best: Candidate | None = None
    provisional: Callable[[], Candidate | None] | None = None
    """The outermost strategy's pick from work in progress (a vote over the samples so far)."""

    def offer(self, candidate: Candidate) -> None:
        """Keep ``candidate`` if it ranks above the best so far."""
        if candidate.better_than(self.best):
            self.best = candidate

    def pick(self) -> Candidate | None:
        """The strategy's pick from work in progress, else the best candidate seen."""
        candidate = self.provisional() if self.provisional is not None else None
        return candidate if candidate is not None else self.best


RunTotals = BestSoFar
"""Deprecated name of :class:`BestSoFar`: what a run spent is its :class:`~thinkloop.runtime.budget.BudgetLedger`'s."""
