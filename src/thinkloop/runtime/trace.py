"""The visible trace: every node of a run as a pydantic event, streamed while the run goes.

Events go to *sinks*: a :class:`JsonlTraceSink` appends and flushes one line per event (a crash loses
nothing already written), and :meth:`Trace.stream` gives UIs an async iterator. A trace read back with
:func:`load_trace` rebuilds the same :class:`ReasoningGraph`.

Secrets never enter a trace: events hold requests and completions (messages and sampling settings), never a
backend's client, headers or keys; :func:`redact` scrubs key-shaped strings from free text such as errors.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Literal, Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from thinkloop.backends.base import Capabilities
from thinkloop.backends.replay import RecordedCall, RecordedFailure, ReplayBackend
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.graph import NODE_JSON, Node, ReasoningGraph
from thinkloop.runtime.locks import WriterLock, write_all

_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|(?i:api[_-]?key)\s*[=:]\s*\S+|"
    r"(?i:authorization)\s*[=:]\s*\S+)"
)


_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
"""Credentials in a URL (``http://user:pass@host``), as an upstream's address may carry them."""


def redact(text: str) -> str:
    """Replace anything that looks like an API key, an authorization header or a URL's credentials.

    Applied where text enters a trace, a log or a result, so every surface that shows it (``serve``'s trace
    routes and viewer page, ``bench`` records, the CLI) is clean without scrubbing of its own.
    """
    return _SECRET.sub("[REDACTED]", _USERINFO.sub(r"\g<scheme>[REDACTED]@", text))


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    run_id: str
    ts: float | None = Field(default_factory=time.time)
    """Wall-clock seconds (Unix time) when the event was made; ``None`` in traces written before it was
    recorded. A call's ``running`` and ``done`` events bracket it, so a viewer can draw a run's timeline."""


class RunStarted(_Event):
    kind: Literal["run_started"] = "run_started"
    question: str
    strategy: str
    model: str
    budget: dict[str, Any] = Field(default_factory=dict)
    started_at: float | None = None
    """Wall-clock time (Unix seconds) the run started."""


class NodeEvent(_Event):
    kind: Literal["node"] = "node"
    node: Node


class RunFinished(_Event):
    kind: Literal["run_finished"] = "run_finished"
    stop_reason: str
    answer: str | None = None
    answer_node: int | None = None
    error: str | None = None
    failure: Failure | None = None
    """The typed record behind ``error`` (:attr:`~thinkloop.runtime.result.Result.failure`); ``None`` in traces
    written before it was recorded."""
    usage: dict[str, int] | None = None
    """The run's summed usage (:class:`~thinkloop.types.RunUsage`), so a trace reader need not add it up."""
    cost: float | None = None
    verdict: str | None = None
    """``passed``, ``failed`` or ``unchecked`` (:attr:`~thinkloop.runtime.result.Result.verdict`); ``None`` in
    traces written before it was recorded."""
    feedback: str | None = None
    warnings: tuple[str, ...] = ()
    stop_detail: str | None = None
    """Why the run stopped, in one line."""


TraceEvent = Annotated[RunStarted | NodeEvent | RunFinished, Field(discriminator="kind")]
_EVENT = TypeAdapter(TraceEvent)

Sink = Callable[[Any], None]
"""Anything called with each event. A sink that also has a :class:`NodeWriter`'s ``write_node`` is handed
each node that way instead, and no :class:`NodeEvent` is built for it (a call makes two)."""


class NodeWriter(Protocol):
    """A sink that writes a node's event from its parts, cheaper than from a built event."""

    def write_node(self, run_id: str, node: Node, ts: float) -> None: ...


class JsonlTraceSink:
    """Append each event as one JSON line, handed to the operating system at once.

    The file is unbuffered: each line is one ``write`` to the kernel, so a crash of this process loses
    nothing already emitted (the same guarantee a flush after each line gives, at half the cost).
    A call's first line ("running": it was sent) leaves out the request; the call's outcome line carries it.
    One process writes a trace file at a time (:class:`~thinkloop.runtime.locks.WriterLock`: a second raises
    :class:`StoreLocked` naming the first). Holding that lock, a file whose last line was torn by a kill is
    repaired first (as the results store does), so the next run's events start on a line of their own: a
    whole last event only gets its newline, a torn one is cut. Every write is checked: a short write (a full
    disk) raises ``OSError`` rather than leave a run that reads as never finished.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():  # a stat; mkdir on an existing folder fails, and the failure costs
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One open for the repair and the appending: a run of a few calls paid for opening the file twice.
        self._file: IO[bytes] | None = self.path.open("a+b", buffering=0)
        self._lock: WriterLock | None = None
        try:
            self._lock = WriterLock(self._file, self.path, what="trace")
            _end_on_a_whole_line(self._file, self.path)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            self._file.close()
            raise
        self._prefixes: dict[str, bytes] = {}

    def __call__(self, event: _Event) -> None:
        if self._file is None:
            return
        write_all(self._file, _dump(event), self.path)

    def write_node(self, run_id: str, node: Node, ts: float) -> None:
        """The line of a :class:`NodeEvent`, written without building the event (the hot path)."""
        if self._file is None:
            return
        prefix = self._prefixes.get(run_id)
        if prefix is None:
            prefix = self._prefixes[run_id] = _line_prefix(run_id)
        line = _node_line(prefix, ts, node)
        written = self._file.write(line)
        if written != len(line):  # short (a full disk): the rest, or an error naming the file
            write_all(self._file, line[written or 0 :], self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


_TAIL_CHUNK = 1 << 16


def _end_on_a_whole_line(file: IO[bytes], path: Path | None = None) -> None:
    """Repair a torn last line of a file open for appending (and reading), by the writer that holds its lock.
    Only the file's tail is read: runs appended to one trace file would otherwise read the whole file once
    per run."""
    end = file.seek(0, 2)
    if end == 0:
        return
    file.seek(end - 1)
    if file.read(1) == b"\n":
        return
    tail, start = b"", end
    while start > 0:  # back a chunk at a time to the last newline (a line can be long)
        step = min(_TAIL_CHUNK, start)
        start -= step
        file.seek(start)
        tail = file.read(step) + tail
        newline = tail.rfind(b"\n", 0, step)
        if newline != -1:
            start, tail = start + newline + 1, tail[newline + 1 :]
            break
    try:
        parse_event(tail.decode("utf-8"))
    except ValueError:  # pydantic's ValidationError and UnicodeDecodeError included
        file.truncate(start)
    else:
        write_all(file, b"\n", path or "the trace")  # appended: the file is open for appending


_RUNNING_NODE_FIELDS = {"request"}


def _line_prefix(run_id: str) -> bytes:
    return f'{{"run_id":{json.dumps(run_id)},"ts":'.encode()


def _node_line(prefix: bytes, ts: float | None, node: Node) -> bytes:
    """A node event's line. A call just sent is written without its request, which its next version (done,
    failed or cancelled) carries: every call is serialised once. Fields that are ``None`` are left out (each
    is ``None`` by default, so the line reads back to the same node): a third less to write, and faster."""
    if node.status == "running" and node.request is not None:
        body = NODE_JSON.to_json(node, exclude=_RUNNING_NODE_FIELDS, exclude_none=True)
    else:
        body = NODE_JSON.to_json(node, exclude_none=True)
    stamp = b"null" if ts is None else repr(ts).encode()
    return b"".join((prefix, stamp, b',"kind":"node","node":', body, b"}\n"))


def _dump(event: _Event) -> bytes:
    if type(event) is NodeEvent:
        return _node_line(_line_prefix(event.run_id), event.ts, event.node)
    # ``kind`` is a default, but the discriminator must be written out (defaults are: nothing is excluded).
    return event.model_dump_json().encode() + b"\n"


@dataclass
class _RunSoFar:
    """What a late subscriber is shown of one run: its start, each node's latest version (and when it was
    emitted, so the compacted event equals the one written), its end."""

    started: RunStarted | None = None
    nodes: dict[int, Node] = field(default_factory=dict)
    times: dict[int, float | None] = field(default_factory=dict)
    """When each node's latest version was emitted: apart from ``nodes``, since a float is not tracked by the
    garbage collector and a (node, time) pair per node would be, for as long as the run is kept."""
    finished: RunFinished | None = None

    def events(self, run_id: str) -> Iterator[Any]:
        if self.started is not None:
            yield self.started
        times = self.times
        for node_id, node in self.nodes.items():
            yield NodeEvent(run_id=run_id, node=node, ts=times[node_id])
        if self.finished is not None:
            yield self.finished


class Trace:
    """Fans a run's events out to sinks and to live subscribers."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)
        self._subscribers: list[MemoryObjectSendStream[Any]] = []
        # Latest node versions only (the graph holds the same objects), not every event: a long run's
        # superseded "running" events would otherwise stay alive for the garbage collector to walk.
        self._runs: dict[str, _RunSoFar] = {}
        self._closed = False

    def emit_node(self, run_id: str, node: Node) -> None:
        """Emit a node's new version; the JSONL sinks write it without an event object being built."""
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _RunSoFar()
        ts = time.time()
        run.nodes[node.id] = node
        run.times[node.id] = ts
        event: NodeEvent | None = None
        for sink in self.sinks:
            write_node = getattr(sink, "write_node", None)
            if write_node is not None:
                write_node(run_id, node, ts)
            else:
                event = event or NodeEvent(run_id=run_id, node=node, ts=ts)
                sink(event)
        if self._subscribers:
            event = event or NodeEvent(run_id=run_id, node=node, ts=ts)
            for stream in tuple(self._subscribers):
                try:
                    stream.send_nowait(event)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._subscribers.remove(stream)

    def emit(self, event: _Event) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            run = self._runs[event.run_id] = _RunSoFar()
        if type(event) is NodeEvent:
            run.nodes[event.node.id] = event.node
            run.times[event.node.id] = event.ts
        elif isinstance(event, RunStarted):
            run.started = event
        elif isinstance(event, RunFinished):
            run.finished = event
        for sink in self.sinks:
            sink(event)
        for stream in tuple(self._subscribers):
            try:
                stream.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(stream)

    def close(self) -> None:
        self._closed = True
        for stream in self._subscribers:
            stream.close()
        self._subscribers.clear()
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()

    async def stream(self) -> AsyncIterator[Any]:
        """Yield the run's events, live as they happen, until the run finishes.

        A subscriber that starts late (a UI task started beside the run) first gets the run so far,
        compacted: its ``RunStarted``, each node's latest version, and its ``RunFinished`` if it is over.
        So every subscriber can rebuild the whole graph, whenever it starts iterating.
        """
        send, receive = anyio.create_memory_object_stream[Any](math.inf)
        for run_id, run in self._runs.items():
            for event in run.events(run_id):
                send.send_nowait(event)
        if self._closed:
            send.close()
        else:
            self._subscribers.append(send)
        async with receive:
            async for event in receive:
                yield event
                if isinstance(event, RunFinished):
                    return


def parse_event(line: str) -> RunStarted | NodeEvent | RunFinished:
    event = _EVENT.validate_json(line)
    if '"ts":' not in line:  # an older trace: its time is unknown, not the time it was read back
        event = event.model_copy(update={"ts": None})
    return event


def load_trace(path: str | Path) -> list[RunStarted | NodeEvent | RunFinished]:
    """Read a JSONL trace. A torn last line (a crash mid-write) is skipped; any other bad line is an error."""
    # Split on "\n" only: JSON escapes it inside strings, but model text may hold raw U+2028 or U+0085,
    # which str.splitlines() would take for line ends. Decode per line: a crash can tear a UTF-8 sequence.
    lines = Path(path).read_bytes().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event(line.decode("utf-8")))
        except ValueError as exc:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a trace event: {exc}") from exc
    return events


def graph_from_events(events: Iterable[Any], run_id: str | None = None) -> ReasoningGraph:
    """Rebuild a run's graph; a node's latest event wins."""
    graph = ReasoningGraph()
    for event in events:
        if isinstance(event, NodeEvent) and (run_id is None or event.run_id == run_id):
            graph.put(event.node)
    return graph


def recorded_calls(events: Iterable[Any], run_id: str | None = None) -> list[RecordedCall]:
    """A run's model calls as (request, completion) pairs, in the order the completions arrived.

    Every node that got a completion counts, whatever it was marked later (a pruned branch was still called).
    """
    return _recorded(events, run_id).calls


@dataclass
class _Recorded:
    """What a run's record holds for a replay: its calls in the order their completions arrived (with each
    one's node and how many calls had been sent by then), and the calls that failed after they were sent."""

    calls: list[RecordedCall] = field(default_factory=list)
    sent_before: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    failures: dict[int, RecordedFailure] = field(default_factory=dict)
    most_tries: int = 1
    """The most tries any one call took (retries included)."""


def _recorded(events: Iterable[Any], run_id: str | None) -> _Recorded:
    recorded = _Recorded()
    sent: set[int] = set()
    seen: set[int] = set()
    requests: dict[int, Any] = {}
    latest: dict[int, Node] = {}
    for event in events:
        if not isinstance(event, NodeEvent) or (run_id is not None and event.run_id != run_id):
            continue
        node = event.node
        latest[node.id] = node
        if node.status == "running":
            sent.add(node.id)  # only calls are ever "running": one was sent (or queued to be)
        if node.request is not None:
            requests.setdefault(node.id, node.request)
        if node.completion is not None and node.id not in seen:
            seen.add(node.id)
            recorded.calls.append((node.request or requests.get(node.id), node.completion))
            recorded.sent_before.append(len(sent))
            recorded.nodes.append(node.id)

    def try_number(node: Node) -> int:
        """Which try of its call a node is (``data["attempt"]``; 1 when absent)."""
        return int((node.data or {}).get("attempt", 1))

    calls = [latest[i] for i in sent]
    for node in calls:
        recorded.most_tries = max(recorded.most_tries, try_number(node))
        if node.status != "failed" or node.error is None or node.completion is not None:
            continue
        # Retried when a call under the same parents, with the same request, was its next try.
        retried = any(
            other.parents == node.parents
            and try_number(other) == try_number(node) + 1
            and requests.get(other.id) == requests.get(node.id)
            for other in calls
        )
        recorded.failures[node.id] = RecordedFailure(
            request=requests.get(node.id),
            error=node.error,
            retried=retried,
            billed=bool((node.data or {}).get("billed", True)),
        )
    return recorded


def replay(
    source: str | Path | Iterable[Any],
    *,
    run_id: str | None = None,
    strict: bool = False,
    capabilities: Capabilities | None = None,
    name: str | None = None,
) -> ReplayBackend:
    """A :class:`ReplayBackend` serving the run recorded in a trace file (or its events).

    ``run_id`` picks the run when the trace holds several; ``name`` defaults to the recorded model's.

    Raises:
        ConfigurationError: the trace is empty, has no such run, or holds several runs and no ``run_id``.
    """
    events = load_trace(source) if isinstance(source, (str, Path)) else list(source)
    where = str(source) if isinstance(source, (str, Path)) else "the given events"
    runs = {e.run_id: e for e in events if isinstance(e, RunStarted)}
    node_runs = {e.run_id for e in events if isinstance(e, NodeEvent)}
    if run_id is None:
        known = list(runs) or sorted(node_runs)
        if not known:
            raise ConfigurationError(f"replay: {where} holds no run")
        if len(known) > 1:
            raise ConfigurationError(f"replay: {where} holds {len(known)} runs ({', '.join(known)}); pass run_id=")
        run_id = known[0]
    elif run_id not in runs and run_id not in node_runs:
        raise ConfigurationError(f"replay: {where} has no run {run_id!r}")
    recorded = _recorded(events, run_id)
    started = runs.get(run_id)
    if name is None:
        name = (
            started.model
            if started is not None
            else next((completion.model for _, completion in recorded.calls if completion.model), "replay")
        )
    if capabilities is None:
        honours_n = any(request is not None and request.n > 1 for request, _ in recorded.calls)
        capabilities = Capabilities(honours_n=honours_n)
    if recorded.most_tries > capabilities.retry.max_retries + 1:  # retry as often as the recorded run did
        retry = capabilities.retry.model_copy(update={"max_retries": recorded.most_tries - 1})
        capabilities = capabilities.model_copy(update={"retry": retry})
    return ReplayBackend(
        recorded.calls,
        name=name,
        strict=strict,
        capabilities=capabilities,
        run_id=run_id,
        sent_before=recorded.sent_before,
        nodes=recorded.nodes,
        failures=recorded.failures,
    )
