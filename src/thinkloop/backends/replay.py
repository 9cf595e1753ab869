"""Re-run a run from its trace: a backend that serves the trace's recorded completions in order.

Every model call a run makes is a node in its trace with the request it sent and the completion it got.
:class:`ReplayBackend` hands those completions back, one per request, in node-id order (the order the calls
were issued in), under the trace's model name. Running the same strategy on the same question with the same
budget then grows the same graph, with no model and no network: for debugging a run, for tests, and for
showing a run again.

Each request gets the first unserved recorded completion whose recorded request is the same, so concurrent
branches that reach the backend in another order than when recorded (trio schedules ready tasks in random
order) still get their own completions. Identical concurrent requests are interchangeable: their completions
are served in recorded order, so under a scheduler that reorders them the replayed graph may place them on
different nodes (the same graph up to node ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from thinkloop.backends.base import Capabilities
from thinkloop.exceptions import BackendError, ConfigurationError
from thinkloop.runtime.trace import NodeEvent, RunStarted, graph_from_events, load_trace
from thinkloop.types import ChatRequest, Completion

__all__ = ["ReplayBackend"]


class ReplayBackend:
    """Serve a saved trace's completions in order.

    Args:
        source: a JSONL trace file, or its events (from :func:`~thinkloop.runtime.trace.load_trace` or a live
            sink).
        run_id: which run to replay when the trace holds several (a trace file appended by several runs).
        strict: also check that each request equals the recorded one, and fail at the first that differs.
        capabilities: what to advertise. By default ``honours_n`` is true exactly when the trace holds a request
            with ``n > 1`` (so the run asks in the same shape as before); give the original backend's
            capabilities when its token overheads shaped a tight budget.
        name: the model name; by default the trace's.

    Raises:
        ConfigurationError: the trace is empty, has no such run, or holds several runs and no ``run_id``.

    ``complete`` raises :class:`BackendError` when the run asks for more calls than the trace recorded, or
    (``strict``) sends a request that matches no unserved recorded one. Without ``strict`` such a request gets
    the next unserved completion in recorded order.
    """

    def __init__(
        self,
        source: str | Path | Iterable[Any],
        *,
        run_id: str | None = None,
        strict: bool = False,
        capabilities: Capabilities | None = None,
        name: str | None = None,
    ) -> None:
        events = load_trace(source) if isinstance(source, (str, Path)) else list(source)
        where = str(source) if isinstance(source, (str, Path)) else "the given events"
        runs = {e.run_id: e for e in events if isinstance(e, RunStarted)}
        node_runs = {e.run_id for e in events if isinstance(e, NodeEvent)}
        if run_id is None:
            known = list(runs) or sorted(node_runs)
            if not known:
                raise ConfigurationError(f"ReplayBackend: {where} holds no run")
            if len(known) > 1:
                raise ConfigurationError(
                    f"ReplayBackend: {where} holds {len(known)} runs ({', '.join(known)}); pass run_id="
                )
            run_id = known[0]
        elif run_id not in runs and run_id not in node_runs:
            raise ConfigurationError(f"ReplayBackend: {where} has no run {run_id!r}")
        graph = graph_from_events(events, run_id=run_id)
        self.run_id = run_id
        self.calls: list[tuple[ChatRequest | None, Completion]] = [
            (node.request, node.completion)
            for node in graph.nodes()
            if node.status == "done" and node.completion is not None
        ]
        started = runs.get(run_id)
        self._name = name or (started.model if started is not None else None) or _model_of(self.calls)
        if capabilities is None:
            honours_n = any(request is not None and request.n > 1 for request, _ in self.calls)
            capabilities = Capabilities(honours_n=honours_n)
        self._capabilities = capabilities
        self.strict = strict
        self.served = 0
        self._unserved = list(range(len(self.calls)))

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def remaining(self) -> int:
        """Recorded completions not served yet."""
        return len(self.calls) - self.served

    async def complete(self, request: ChatRequest) -> Completion:
        if self.served >= len(self.calls):
            raise BackendError(
                f"ReplayBackend: the trace of run {self.run_id} recorded {len(self.calls)} completed calls; "
                f"the run asked for call {self.served + 1}"
            )
        index = self._match(request)
        if index is None:
            first = self._unserved[0]
            recorded = self.calls[first][0]
            if self.strict and recorded is not None:
                raise BackendError(
                    f"ReplayBackend: call {self.served + 1} differs from the recorded request "
                    f"({_difference(recorded, request)})"
                )
            index = first
        self._unserved.remove(index)
        self.served += 1
        return self.calls[index][1]

    def _match(self, request: ChatRequest) -> int | None:
        """The first unserved recorded call with this request."""
        for index in self._unserved:
            if self.calls[index][0] == request:
                return index
        return None


def _model_of(calls: list[tuple[ChatRequest | None, Completion]]) -> str:
    for _, completion in calls:
        if completion.model:
            return completion.model
    return "replay"


def _difference(recorded: ChatRequest, request: ChatRequest) -> str:
    """The first field that differs, with both values (messages shortened)."""
    for field in ChatRequest.model_fields:
        before, after = getattr(recorded, field), getattr(request, field)
        if before != after:
            if field == "messages":
                return f"messages: recorded {_short(before)}, got {_short(after)}"
            return f"{field}: recorded {before!r}, got {after!r}"
    return "no field differs"


def _short(messages: tuple[Any, ...]) -> str:
    text = " | ".join(f"{m.role}: {m.content}" for m in messages)
    return repr(text if len(text) <= 160 else text[:157] + "...")
