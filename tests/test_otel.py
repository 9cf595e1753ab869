"""OpenTelemetry export through the SDK's in-memory exporter: span count, parentage and attributes follow the
trace of real runs (ScriptedBackend under real strategies), from a file or live."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import view_traces
from thinkloop import Budget, ScriptedBackend
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.graph import Node
from thinkloop.runtime.result import Result
from thinkloop.runtime.trace import NodeEvent, load_trace
from thinkloop.strategies.cot import ChainOfThought
from thinkloop.telemetry import INSTALL_HINT, OtelSink, export_trace


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_node(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.attributes["thinkloop.node.id"]: span for span in spans}


def final_nodes(path: Path) -> dict[int, Node]:
    return {e.node.id: e.node for e in load_trace(path) if isinstance(e, NodeEvent)}


def assert_spans_follow_the_graph(spans: tuple[ReadableSpan, ...], result: Result) -> None:
    graph = result.graph
    assert len(spans) == len(graph)
    spans_by_node = by_node(spans)
    assert len({span.context.trace_id for span in spans}) == 1
    for node in graph.nodes():
        span = spans_by_node[node.id]
        if not node.parents:
            assert span.parent is None
            continue
        assert span.parent.span_id == spans_by_node[node.parents[0]].context.span_id
        linked = {link.context.span_id for link in span.links}
        assert linked == {spans_by_node[p].context.span_id for p in node.parents[1:]}
        assert span.start_time <= span.end_time


def test_a_self_consistency_trace_becomes_genai_spans(tmp_path: Path, provider, exporter) -> None:
    trace = tmp_path / "sc.jsonl"
    result = view_traces.self_consistency(trace)
    assert export_trace(trace, tracer_provider=provider) == len(result.graph)
    spans = exporter.get_finished_spans()
    assert_spans_follow_the_graph(spans, result)

    nodes = final_nodes(trace)
    spans_by_node = by_node(spans)
    root = spans_by_node[0]
    assert root.name == f"thinkloop {result.strategy}"
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert root.attributes["thinkloop.run_id"] == result.run_id
    assert root.attributes["thinkloop.stop_reason"] == "completed"
    assert root.attributes["thinkloop.stop_detail"] == result.stop_detail
    assert root.attributes["thinkloop.verdict"] == "unchecked"
    assert tuple(root.attributes.get("thinkloop.warnings", ())) == result.warnings
    assert root.attributes["thinkloop.budget.tokens"] == 20_000
    calls = [n for n in nodes.values() if n.request is not None]
    assert len(calls) == 5
    for node in calls:
        span = spans_by_node[node.id]
        assert span.name == "chat scripted"
        assert span.kind == SpanKind.CLIENT
        attributes = span.attributes
        assert attributes["openinference.span.kind"] == "LLM"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "thinkloop"  # the scripted test double
        assert attributes["gen_ai.request.model"] == "scripted"
        assert attributes["gen_ai.request.max_tokens"] == node.request.max_tokens
        assert attributes["gen_ai.request.temperature"] == node.request.temperature
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert attributes["gen_ai.usage.input_tokens"] == node.usage.prompt_tokens
        assert attributes["gen_ai.usage.output_tokens"] == node.usage.completion_tokens
        assert "gen_ai.usage.reasoning.output_tokens" not in attributes  # unknown is left out, never 0
        assert (span.end_time - span.start_time) / 1e9 >= 0.015  # the call slept 20 ms
    assert sum(spans_by_node[n.id].attributes["gen_ai.usage.input_tokens"] for n in calls) == result.usage.prompt_tokens
    vote = spans_by_node[result.answer_path()[-1].id]
    assert (vote.name, vote.attributes["openinference.span.kind"]) == ("vote", "CHAIN")


def test_message_contents_leave_only_when_asked(tmp_path: Path, provider, exporter) -> None:
    trace = tmp_path / "sc.jsonl"
    view_traces.self_consistency(trace)
    export_trace(trace, tracer_provider=provider)
    for span in exporter.get_finished_spans():
        values = json.dumps({k: str(v) for k, v in span.attributes.items()})
        assert "6 * 7" not in values and "Let me think" not in values
        assert not {"gen_ai.input.messages", "gen_ai.output.messages", "input.value", "output.value"} & set(
            span.attributes
        )
    exporter.clear()

    export_trace(trace, tracer_provider=provider, include_content=True)
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    messages = json.loads(calls[0].attributes["gen_ai.input.messages"])
    assert messages[-1]["role"] == "user" and "What is 6 * 7?" in messages[-1]["parts"][0]["content"]
    output = json.loads(calls[0].attributes["gen_ai.output.messages"])
    assert output[0]["parts"][0]["content"].startswith("Let me think step by step. Answer: ")
    root = next(s for s in exporter.get_finished_spans() if s.parent is None)
    assert (root.attributes["input.value"], root.attributes["output.value"]) == ("What is 6 * 7?", "42")


def test_tree_search_verifiers_are_evaluators_and_pruned_branches_say_why(tmp_path: Path, provider, exporter) -> None:
    trace = tmp_path / "tree.jsonl"
    result = view_traces.tree_search(trace)
    export_trace(trace, tracer_provider=provider)
    spans = exporter.get_finished_spans()
    assert_spans_follow_the_graph(spans, result)
    spans_by_node = by_node(spans)

    verdicts = [n for n in result.graph.nodes() if n.kind == "verify"]
    assert verdicts
    for node in verdicts:
        span = spans_by_node[node.id]
        assert (span.name, span.attributes["openinference.span.kind"]) == ("verify", "EVALUATOR")
        assert span.attributes["thinkloop.verdict.accepted"] == node.data["accepted"]
    pruned = result.graph.pruned()
    assert pruned
    for node in pruned:
        assert spans_by_node[node.id].attributes["thinkloop.node.status"] == "pruned"
        assert spans_by_node[node.id].attributes["thinkloop.pruned_reason"] == node.data["pruned"]
    kinds = {span.attributes["thinkloop.node.kind"]: span.attributes["openinference.span.kind"] for span in spans}
    assert kinds["expand"] == "LLM" and kinds["backtrack"] == "CHAIN"
    root = spans_by_node[0]  # the run's verdict on its root span, the same the result has
    assert root.attributes["thinkloop.verdict"] == result.verdict != "unchecked"
    assert "thinkloop.feedback" not in root.attributes  # the check's words are content: only when asked


def test_failed_calls_are_error_spans(tmp_path: Path, provider, exporter) -> None:
    trace = tmp_path / "budget.jsonl"
    # A budget too small for the call: the call is refused before it is sent and recorded as failed.
    result = ChainOfThought().run_sync(
        "q", backend=ScriptedBackend(["Answer: 1"]), trace_path=trace, budget=Budget(tokens=10)
    )
    export_trace(trace, tracer_provider=provider)
    spans = exporter.get_finished_spans()
    failed = [n for n in result.graph.nodes() if n.status == "failed"]
    assert failed and len(spans) == len(result.graph)
    span = by_node(spans)[failed[0].id]
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "budget_exhausted"
    assert span.status.description == failed[0].error


def test_the_live_sink_exports_the_same_spans_as_the_trace_file(tmp_path: Path, provider, exporter) -> None:
    sink = OtelSink(tracer_provider=provider)
    trace = tmp_path / "tree.jsonl"
    strategy_result = view_traces.tree_search(trace, sinks=(sink,))
    live = exporter.get_finished_spans()
    assert sink.spans == len(live) == len(strategy_result.graph)
    assert_spans_follow_the_graph(live, strategy_result)
    exporter.clear()
    export_trace(trace, tracer_provider=provider)
    from_file = exporter.get_finished_spans()

    def shape(spans: tuple[ReadableSpan, ...]) -> list[tuple]:
        return sorted((s.name, s.attributes["thinkloop.node.id"], tuple(sorted(s.attributes.items()))) for s in spans)

    assert shape(live) == shape(from_file)


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # What a user without thinkloop[otel] meets: the import fails, and the message says what to install.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=re.escape(INSTALL_HINT)):
        export_trace(tmp_path / "any.jsonl")
    with pytest.raises(ConfigurationError, match=re.escape("pip install 'thinkloop[otel]'")):
        OtelSink()
