"""A trace read back as runs: each node's latest version and when it started and settled.

What every reader of a trace needs first (the viewer's page, the OpenTelemetry export): one place that groups
events by run and times each node from the events' own clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from thinkloop.runtime.graph import Node
from thinkloop.runtime.trace import NodeEvent, RunFinished, RunStarted


@dataclass
class RecordedRun:
    """One run's events: its start and end, each node's latest version, and when each node started and
    first left "running" (Unix seconds from the events' ``ts``)."""

    run_id: str
    started: RunStarted | None = None
    finished: RunFinished | None = None
    nodes: dict[int, Node] = field(default_factory=dict)
    start: dict[int, float] = field(default_factory=dict)
    end: dict[int, float] = field(default_factory=dict)
    first: float | None = None
    last: float | None = None

    def add(self, event: Any, clock: float) -> None:
        self.first = clock if self.first is None else min(self.first, clock)
        self.last = clock if self.last is None else max(self.last, clock)
        if isinstance(event, NodeEvent):
            node = event.node
            self.nodes[node.id] = node
            self.start.setdefault(node.id, clock)
            if node.status != "running":
                self.end.setdefault(node.id, clock)
        elif isinstance(event, RunStarted):
            self.started = event
        elif isinstance(event, RunFinished):
            self.finished = event


def group_runs(events: Iterable[Any], *, untimed: Callable[[int], float] = float) -> list[RecordedRun]:
    """The runs in ``events``, in order of first appearance. An event without a ``ts`` (an older trace) is
    timed ``untimed(its index)``: its position by default, so the order still shows."""
    runs: dict[str, RecordedRun] = {}
    for index, event in enumerate(events):
        run = runs.get(event.run_id)
        if run is None:
            run = runs[event.run_id] = RecordedRun(event.run_id)
        ts = getattr(event, "ts", None)
        run.add(event, untimed(index) if ts is None else ts)
    return list(runs.values())
