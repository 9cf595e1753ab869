"""The traces behind ``GET /v1/traces/{id}``: the events of recent runs, in memory, oldest dropped first.

A served run's trace is for the client that made it, right after: a bounded store keeps the server's memory
flat however long it runs (the throughput benchmark checks peak RSS). It is bounded twice: by runs
(``--keep-traces``) and by size (``--keep-trace-bytes``, estimated from the text the events hold, counted once
per shared object), so forty runs of 3.5 MB prompts cannot grow the process by hundreds of megabytes. Events
are kept as objects and written as JSON lines only when a trace is asked for, so a run that nobody inspects
costs no serialisation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class TraceStore:
    """An LRU of run id → its trace events, bounded by count and by estimated size."""

    def __init__(self, max_runs: int, max_bytes: int | None = None) -> None:
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._runs: OrderedDict[str, list[Any]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._runs)

    def sink(self, run_id: str) -> Any:
        """A trace sink for a new run (the list's ``append``); the oldest run is dropped past ``max_runs``."""
        events: list[Any] = []
        if self.max_runs > 0:
            self._runs[run_id] = events
            while len(self._runs) > self.max_runs:
                self._drop()
        return events.append

    def finished(self, run_id: str) -> None:
        """The run is over: count its size, and drop the oldest runs while the store is over its size bound."""
        events = self._runs.get(run_id)
        if events is None or self.max_bytes is None:
            return
        size = estimate_bytes(events)
        self._sizes[run_id] = size
        self.bytes += size
        while self.bytes > self.max_bytes and self._runs:
            self._drop()

    def _drop(self) -> None:
        run_id, _ = self._runs.popitem(last=False)
        self.bytes -= self._sizes.pop(run_id, 0)

    def events(self, run_id: str) -> list[Any] | None:
        """The run's trace events, or ``None`` when not kept."""
        events = self._runs.get(run_id)
        if events is not None:
            self._runs.move_to_end(run_id)
        return events

    def jsonl(self, run_id: str) -> str | None:
        """The run's trace as JSON lines (what ``--trace FILE`` writes), or ``None`` when not kept."""
        events = self.events(run_id)
        if events is None:
            return None
        return "".join(event.model_dump_json() + "\n" for event in events)


def estimate_bytes(events: list[Any]) -> int:
    """About how much memory ``events`` hold: their texts (prompts, replies, thinking), each object once."""
    seen: set[int] = set()
    total = 0
    for event in events:
        total += 200  # the event and its fixed fields
        node = getattr(event, "node", None)
        if node is None:
            total += len(getattr(event, "question", "") or "")
            continue
        total += len(node.text or "")
        request, completion = node.request, node.completion
        if request is not None and id(request) not in seen:
            seen.add(id(request))
            total += sum(len(m.content) for m in request.messages)
        if completion is not None and id(completion) not in seen:
            seen.add(id(completion))
            total += sum(len(c.text) + len(c.reasoning or "") for c in completion.choices)
    return total


class SharedTraceStore(TraceStore):
    """Traces shared by ``--workers`` processes: a finished run's JSON lines go into one sqlite file, so a
    trace asked of any worker is found; the file is bounded by runs and bytes like the store in memory.

    Writing the lines costs one serialisation per run, paid only with more than one worker.
    """

    def __init__(self, max_runs: int, max_bytes: int | None, path: str) -> None:
        import sqlite3

        super().__init__(max_runs, max_bytes)
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(
            "create table if not exists traces (seq integer primary key autoincrement, "
            "run_id text unique not null, jsonl text not null, bytes integer not null)"
        )

    def finished(self, run_id: str) -> None:
        events = self._runs.get(run_id)
        super().finished(run_id)
        if events is None:
            return
        jsonl = "".join(event.model_dump_json() + "\n" for event in events)
        db = self._db
        db.execute("begin immediate")
        try:
            db.execute(
                "insert or replace into traces (run_id, jsonl, bytes) values (?, ?, ?)", (run_id, jsonl, len(jsonl))
            )
            db.execute("delete from traces where seq <= (select max(seq) from traces) - ?", (self.max_runs,))
            if self.max_bytes is not None:
                db.execute(
                    "delete from traces where seq < (select coalesce(max(seq), 0) from (select seq, "
                    "sum(bytes) over (order by seq desc) as total from traces) where total > ?)",
                    (self.max_bytes,),
                )
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise

    def events(self, run_id: str) -> list[Any] | None:
        events = super().events(run_id)
        if events is not None:
            return events
        jsonl = self._stored(run_id)
        if jsonl is None:
            return None
        from thinkloop.runtime.trace import parse_event

        return [parse_event(line) for line in jsonl.splitlines() if line.strip()]

    def jsonl(self, run_id: str) -> str | None:
        local = super().jsonl(run_id)
        return local if local is not None else self._stored(run_id)

    def _stored(self, run_id: str) -> str | None:
        row = self._db.execute("select jsonl from traces where run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None
