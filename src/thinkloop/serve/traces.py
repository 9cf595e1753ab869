"""The traces behind ``GET /v1/traces/{id}``: the events of the last N runs, in memory, oldest dropped first.

A served run's trace is for the client that made it, right after: a bounded store keeps the server's memory
flat however long it runs (the throughput benchmark checks peak RSS). Events are kept as objects and written
as JSON lines only when a trace is asked for, so a run that nobody inspects costs no serialisation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class TraceStore:
    """An LRU of run id → its trace events."""

    def __init__(self, max_runs: int) -> None:
        self.max_runs = max_runs
        self._runs: OrderedDict[str, list[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def sink(self, run_id: str) -> Any:
        """A trace sink for a new run (the list's ``append``); the oldest run is dropped past ``max_runs``."""
        events: list[Any] = []
        if self.max_runs > 0:
            self._runs[run_id] = events
            while len(self._runs) > self.max_runs:
                self._runs.popitem(last=False)
        return events.append

    def events(self, run_id: str) -> list[Any] | None:
        """The run's trace events, or ``None`` when not kept."""
        events = self._runs.get(run_id)
        if events is not None:
            self._runs.move_to_end(run_id)
        return events

    def jsonl(self, run_id: str) -> str | None:
        """The run's trace as JSON lines (what ``--trace FILE`` writes), or ``None`` when not kept."""
        events = self._runs.get(run_id)
        if events is None:
            return None
        self._runs.move_to_end(run_id)
        return "".join(event.model_dump_json() + "\n" for event in events)
