"""The visible trace: JSONL that loads back into the same graph, a live async stream, and no secrets."""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import AcceptAnswer
from thinkloop import (
    BackendError,
    ChainOfThought,
    ChatRequest,
    Engine,
    JsonlTraceSink,
    OpenAIBackend,
    Outcome,
    ReasoningGraph,
    RunContext,
    ScriptedBackend,
    Strategy,
    Trace,
    graph_from_events,
    load_trace,
)
from thinkloop.runtime.trace import NodeEvent, RunFinished, RunStarted, redact

pytestmark = pytest.mark.anyio


# --- (b) a run's trace round-trips through JSONL ---------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One step of a random run: a model call, a batch of samples, a decision, a prune or a failed call."""

    kind: Literal["call", "sample", "decide", "prune", "fail"]
    parent: int
    other: int
    text: str
    k: int


ops = st.builds(
    Op,
    kind=st.sampled_from(["call", "sample", "decide", "prune", "fail"]),
    parent=st.integers(0, 100),
    other=st.integers(0, 100),
    text=st.text(max_size=30),  # any unicode: control characters, newlines, quotes, emoji
    k=st.integers(2, 4),
)


class Program(Strategy):
    """Grows the graph one op at a time, with every kind of node and status a run can produce."""

    name = "program"

    def __init__(self, program: list[Op]) -> None:
        super().__init__()
        self.program = program

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        nodes = [ctx.graph.node(parent)]
        for index, op in enumerate(self.program):
            base = nodes[op.parent % len(nodes)]
            request = ChatRequest.of(f"{op.kind} {index}", max_tokens=50)
            if op.kind == "call":
                node, completion = await ctx.call(request, parents=[base.id], strategy=self.name)
                nodes.append(node)
                ctx.offer(ctx.candidate(node, completion.choices[0]))
            elif op.kind == "sample":
                samples = await ctx.sample(request, op.k, parents=[base.id], strategy=self.name)
                nodes.extend(ctx.graph.node(c.node_id) for c in samples.candidates)
            elif op.kind == "decide":
                other = nodes[op.other % len(nodes)]
                node = ctx.record(
                    "vote",
                    sorted({base.id, other.id}),
                    strategy=self.name,
                    score=0.5,
                    answer=op.text,
                    data={"note": op.text, "op": index, "weights": [0.25, 0.75]},
                )
                nodes.append(node)
            elif op.kind == "prune" and base.kind != "question":
                ctx.mark(ctx.graph.node(base.id), "pruned", score=0.0)
            elif op.kind == "fail":
                with contextlib.suppress(BackendError):
                    await ctx.call(request, parents=[base.id], strategy=self.name)
        return Outcome(candidate=ctx.best, stop_reason="completed")


def program_backend(program: list[Op]) -> ScriptedBackend:
    def reply(request: ChatRequest) -> str:
        kind, index = request.messages[-1].content.split()
        if kind == "fail":
            raise RuntimeError(f"server fell over: {program[int(index)].text}")
        return program[int(index)].text

    return ScriptedBackend(reply)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=st.lists(ops, max_size=15), question=st.text(min_size=1, max_size=30))
async def test_a_run_trace_round_trips_through_jsonl_to_an_equal_graph(program: list[Op], question: str):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "trace.jsonl"
        result = await Program(program).run(question, backend=program_backend(program), trace_path=path)
        events = load_trace(path)

    assert isinstance(events[0], RunStarted)
    assert events[0].question == question
    assert isinstance(events[-1], RunFinished)
    assert events[-1].stop_reason == result.stop_reason
    assert events[-1].answer == result.answer
    assert all(isinstance(e, NodeEvent) for e in events[1:-1])
    loaded = graph_from_events(events)
    assert loaded == result.graph
    assert [n.model_dump() for n in loaded.nodes()] == [n.model_dump() for n in result.graph.nodes()]
    # No node is left "running" once the run is over.
    assert not loaded.by_status("running")


def _small_run_trace(path: Path) -> object:
    return ChainOfThought(max_rounds=2).run_sync(
        "What is 6 * 7?",
        backend=ScriptedBackend(["Answer: 41", "Answer: 42"]),
        trace_path=path,
        verifier=AcceptAnswer("42"),
    )


def test_a_torn_last_line_is_skipped(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    result = _small_run_trace(path)
    whole = path.read_text()
    complete = load_trace(path)
    assert isinstance(complete[-1], RunFinished)
    # A crash mid-write leaves half a line.
    path.write_text(whole[: len(whole) - len(whole.splitlines()[-1]) // 2 - 1])
    torn = load_trace(path)
    assert torn == complete[:-1]
    assert graph_from_events(torn) == result.graph


def test_a_last_line_torn_inside_a_utf8_character_is_skipped(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    ChainOfThought().run_sync("q", backend=ScriptedBackend(["Answer: ünïcödé"]), trace_path=path)
    whole = path.read_bytes()
    cut = whole.rindex("ü".encode()) + 1  # half of a two-byte character
    path.write_bytes(whole[:cut])
    events = load_trace(path)
    assert events and not isinstance(events[-1], RunFinished)


@pytest.mark.parametrize("cut", ["mid-line", "mid-utf8", "whole-line-without-newline"])
def test_appending_a_run_to_a_trace_torn_by_a_kill_keeps_it_readable(tmp_path: Path, cut: str):
    """Issue 16, item 6: the next run's first event must not be glued onto the torn line."""
    path = tmp_path / "trace.jsonl"
    ChainOfThought().run_sync("q", backend=ScriptedBackend(["Answer: ünïcödé 7"]), trace_path=path)
    whole = path.read_bytes()
    before = load_trace(path)
    if cut == "mid-line":
        torn = whole[: len(whole) - 40]
    elif cut == "mid-utf8":
        torn = whole[: whole.rindex("ü".encode()) + 1]
    else:
        torn = whole[:-1]  # the last event is whole; only its newline is missing
    path.write_bytes(torn)
    kept = load_trace(path)
    second = ChainOfThought().run_sync("q2", backend=ScriptedBackend(["Answer: 8"]), trace_path=path)
    events = load_trace(path)
    assert events[: len(kept)] == kept
    assert graph_from_events(events, run_id=second.run_id) == second.graph
    assert isinstance(events[-1], RunFinished) and events[-1].run_id == second.run_id
    if cut == "whole-line-without-newline":
        assert kept == before  # a whole last event is kept, not cut


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    cut=st.integers(min_value=0, max_value=400),
    chunk=st.sampled_from([1, 3, 16, 1 << 16]),
)
def test_the_torn_line_repair_reads_only_the_tail_and_agrees_with_reading_it_all(
    tmp_path_factory: pytest.TempPathFactory, lines: list[int], cut: int, chunk: int
):
    """Appending runs to one trace reads only the file's tail, in chunks back to the last newline; whatever
    the cut and the chunk size, the repaired file is what a whole-file read would leave."""
    import thinkloop.runtime.trace as trace_module

    events = [RunStarted(run_id="r", strategy="s", model="m", question="x" * size).model_dump_json() for size in lines]
    whole = "".join(line + "\n" for line in events).encode()
    torn = whole[: max(0, len(whole) - cut)]
    start = torn.rfind(b"\n") + 1
    if not torn or torn.endswith(b"\n"):
        expected = torn
    elif torn[start:] + b"\n" == whole[start : len(torn) + 1]:
        expected = torn + b"\n"  # the last event is whole; only its newline was missing
    else:
        expected = torn[:start]
    path = tmp_path_factory.mktemp("tail") / "trace.jsonl"
    path.write_bytes(torn)
    original = trace_module._TAIL_CHUNK
    trace_module._TAIL_CHUNK = chunk
    try:
        with path.open("a+b", buffering=0) as file:
            trace_module._end_on_a_whole_line(file)
    finally:
        trace_module._TAIL_CHUNK = original
    assert path.read_bytes() == expected


def test_unicode_line_separators_in_model_text_do_not_split_a_line(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    text = "step one\u2028step two\x85step three\u2029Answer: 5"
    result = ChainOfThought().run_sync("q", backend=ScriptedBackend([text]), trace_path=path)
    events = load_trace(path)
    assert isinstance(events[-1], RunFinished)
    assert graph_from_events(events) == result.graph
    assert result.graph.node(1).text == text


def test_a_bad_line_before_the_end_is_an_error_naming_it(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    _small_run_trace(path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:10]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"^{path}:3: not a trace event"):
        load_trace(path)


def test_runs_appended_to_one_file_separate_by_run_id(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    first = _small_run_trace(path)
    second = _small_run_trace(path)
    events = load_trace(path)
    assert sum(isinstance(e, RunFinished) for e in events) == 2
    assert graph_from_events(events, run_id=first.run_id) == first.graph
    assert graph_from_events(events, run_id=second.run_id) == second.graph


async def test_the_jsonl_sink_flushes_each_event_before_the_call_returns(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    seen_during_call: list[list[object]] = []

    def reply(request: ChatRequest) -> str:
        # A crash right now would keep everything up to the running call.
        seen_during_call.append(load_trace(path))
        return "Answer: 3"

    await ChainOfThought().run("q", backend=ScriptedBackend(reply), trace_path=path)
    (events,) = seen_during_call
    assert isinstance(events[0], RunStarted)
    assert [e.node.kind for e in events[1:]] == ["question", "generate"]
    assert events[-1].node.status == "running"


# --- the live stream -----------------------------------------------------------------------------------------
async def test_stream_yields_events_live_and_ends_with_run_finished(tmp_path: Path):
    trace = Trace()
    seen: list[object] = []
    first_call_seen = anyio.Event()

    async def watch() -> None:
        async for event in trace.stream():
            seen.append(event)
            if isinstance(event, NodeEvent) and event.node.kind == "generate" and event.node.status == "done":
                first_call_seen.set()

    async def reply(request: ChatRequest) -> str:
        if len(backend.requests) == 2:
            # The watcher saw the first call finish while the run is still going.
            with anyio.fail_after(10):
                await first_call_seen.wait()
        return f"Answer: {40 + len(backend.requests)}"

    backend = ScriptedBackend(reply)
    path = tmp_path / "trace.jsonl"
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        result = await Engine(backend).run(
            ChainOfThought(max_rounds=3), "q", verifier=AcceptAnswer("42"), trace=trace, trace_path=path
        )
    assert result.stop_reason == "accepted"
    assert isinstance(seen[0], RunStarted)
    assert isinstance(seen[-1], RunFinished) and seen[-1].answer == "42"

    # The stream carries the file's events (the ones before the watcher started compacted to each node's
    # latest version, depending on when the scheduler ran it), in order, and rebuilds the same graph.
    # (The file writes a call's "running" line without its request, which the call's outcome line carries.)
    def key(event: object) -> tuple[object, ...]:
        node = getattr(event, "node", None)
        return (type(event).__name__, node.id if node else None, node.status if node else None)

    events = [key(event) for event in load_trace(path)]
    positions = [events.index(key(event)) for event in seen]
    assert positions == sorted(positions)
    assert graph_from_events(seen) == result.graph == graph_from_events(load_trace(path))


async def test_a_stream_opened_after_the_run_replays_it_compacted_and_ends(tmp_path: Path):
    trace = Trace()
    path = tmp_path / "trace.jsonl"
    backend = ScriptedBackend(["Answer: 1", "Answer: 2"])
    result = await Engine(backend).run(
        ChainOfThought(max_rounds=2), "q", trace=trace, trace_path=path, verifier=AcceptAnswer("2")
    )
    with anyio.fail_after(5):
        late = [event async for event in trace.stream()]
    events = load_trace(path)
    # The run so far: its start, each node's latest version (no superseded "running" ones), its end.
    assert late[0] == events[0] and late[-1] == events[-1]
    assert [e.node for e in late[1:-1]] == result.graph.nodes()
    assert graph_from_events(late) == graph_from_events(events) == result.graph
    assert len(late) < len(events)


def test_a_sink_that_is_closed_writes_nothing_more(tmp_path: Path):
    sink = JsonlTraceSink(tmp_path / "deep" / "trace.jsonl")
    sink(RunFinished(run_id="r", stop_reason="completed"))
    sink.close()
    sink(RunFinished(run_id="r", stop_reason="completed"))
    assert len(load_trace(sink.path)) == 1


# --- secrets ----------------------------------------------------------------------------------------------
KEY = "sk-test-SECRET-0123456789abcdefXYZ"


def echoing_server(status: int, message: str) -> httpx2.MockTransport:
    """A server that fails and echoes the request's credentials back in its error body."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = message.format(auth=request.headers["authorization"], key=KEY)
        return httpx2.Response(status, json={"error": {"message": body, "type": "server_error", "code": None}})

    return httpx2.MockTransport(handler)


@pytest.mark.parametrize(
    "message",
    [
        "internal error while handling Authorization: {auth}",
        "upstream rejected {auth}",
        "bad key {key}",
        '{{"headers": {{"authorization": "{auth}", "api_key": "{key}"}}}}',
        "cannot reach the upstream at http://alice:SECRET-hunter2@10.0.0.1/v1",
    ],
)
async def test_api_keys_never_reach_a_trace_or_a_result(tmp_path: Path, message: str):
    path = tmp_path / "trace.jsonl"
    async with httpx2.AsyncClient(transport=echoing_server(500, message)) as client:
        backend = OpenAIBackend(
            "gpt-4o-mini", base_url="http://testserver/v1", api_key=KEY, max_retries=0, http_client=client
        )
        result = await ChainOfThought().run("q", backend=backend, trace_path=path)

    assert result.stop_reason == "error"
    assert "500" in result.error  # the failure is still explained
    trace_text = path.read_text()
    assert '"failed"' in trace_text
    for text in (trace_text, json.dumps(result.to_json_dict()), repr(result), str(result.error), repr(backend)):
        assert "SECRET" not in text


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {KEY}",
        f"authorization={KEY}",
        f"Bearer {KEY}",
        f"api_key: {KEY}",
        f"OPENAI_API_KEY={KEY}",
        f"{{'api-key': '{KEY}'}}",
        "cannot reach http://alice:SECRET@127.0.0.1:9/v1",
        "cannot reach https://SECRET@example.com/v1",
    ],
)
def test_redact_scrubs_key_shaped_text(text: str):
    scrubbed = redact(f"before {text} after")
    assert "SECRET" not in scrubbed
    assert scrubbed.startswith("before ") and "[REDACTED]" in scrubbed


def test_redact_leaves_ordinary_text_alone():
    text = "The answer is 42; the key insight is that 6 * 7 = 42."
    assert redact(text) == text


def test_an_empty_event_list_is_an_empty_graph():
    assert graph_from_events([]) == ReasoningGraph()
