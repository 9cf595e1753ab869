"""A thinkloop run as OpenTelemetry spans, following the GenAI semantic conventions and OpenInference.

Every node of the reasoning graph becomes one span, its parent the span of the node's first parent (other
parents become span links), so Langfuse, Phoenix or any OTLP backend draws the run as thinkloop does: the
question is the root; model calls are ``chat {model}`` spans (OpenInference kind ``LLM``) with the
``gen_ai.*`` request, response and usage attributes; verifier verdicts are ``EVALUATOR`` spans; votes,
selections, prunes and backtracks are ``CHAIN`` steps. Times come from the trace events' ``ts``.

Message contents (prompts, completions, answers, feedback) leave the process only when asked
(``include_content=True``): traces routinely go to shared collectors. Errors in spans are already redacted
by the runtime.

OpenTelemetry is an optional extra (``pip install 'thinkloop[otel]'``), imported only when used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinkloop.backends.profiles import provider_of
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.failure import failure_of
from thinkloop.runtime.graph import Node
from thinkloop.runtime.runs import RecordedRun, group_runs
from thinkloop.runtime.trace import RunFinished, load_trace

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

INSTALL_HINT = "OpenTelemetry export needs the otel extra: pip install 'thinkloop[otel]'"
TRACER_NAME = "thinkloop"


def _otel() -> Any:
    """The ``opentelemetry.trace`` module, or a one-line error naming the extra to install."""
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigurationError(INSTALL_HINT) from exc
    return trace


def guess_provider(model: str | None) -> str:
    """``gen_ai.provider.name`` for a run's model when the caller does not say (the model profiles' answer,
    :func:`thinkloop.backends.profiles.provider_of`)."""
    return provider_of(model)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SpanExporter:
    """Turns runs into spans on a tracer.

    Args:
        tracer_provider: where spans go (default: the global provider OpenTelemetry was configured with).
        include_content: put prompts, completions, answers and verifier feedback on the spans.
        provider: ``gen_ai.provider.name`` (default: :func:`guess_provider` of the run's model).
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        include_content: bool = False,
        provider: str | None = None,
    ) -> None:
        otel = _otel()
        from thinkloop import __version__

        self._otel = otel
        self.tracer: Tracer = otel.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
        self.include_content = include_content
        self.provider = provider

    def export_events(self, events: Iterable[Any]) -> int:
        """Spans for every run among ``events``; returns the number of spans made."""
        now = time.time()  # the clock of an older trace's events, which carry none
        return sum(self._export_run(run) for run in group_runs(events, untimed=lambda _index: now))

    # --- one run ----------------------------------------------------------------------------------------
    def _export_run(self, run: RecordedRun) -> int:
        otel = self._otel
        started, finished = run.started, run.finished
        model = started.model if started is not None else None
        provider = self.provider or guess_provider(model)
        spans: dict[int, Span] = {}
        ends: list[tuple[Span, int]] = []
        root: Span | None = None
        for node_id in sorted(run.nodes):
            node = run.nodes[node_id]
            parent = spans.get(node.parents[0]) if node.parents else root
            links = [
                otel.Link(spans[p].get_span_context(), {"thinkloop.edge": "parent"})
                for p in node.parents[1:]
                if p in spans
            ]
            start = run.start[node_id]
            end = run.end.get(node_id, run.last if run.last is not None else start)
            name, kind, attributes = self._describe(node, run, model, provider)
            if root is None and not node.parents:
                # The question node is the run: it spans from the run's first event to its last.
                start, end = run.first or start, run.last or end
                name, attributes = (
                    f"thinkloop {started.strategy if started else 'run'}",
                    attributes | self._run_attributes(run),
                )
            span = self.tracer.start_span(
                name,
                context=otel.set_span_in_context(parent) if parent is not None else None,
                kind=kind,
                attributes=attributes,
                links=links,
                start_time=_ns(start),
            )
            if node.status == "failed":
                span.set_status(otel.Status(otel.StatusCode.ERROR, node.error or "failed"))
            if root is None and not node.parents:
                root = span
                if finished is not None and finished.stop_reason == "error":
                    span.set_status(otel.Status(otel.StatusCode.ERROR, finished.error or "error"))
            spans[node_id] = span
            ends.append((span, _ns(max(end, start))))
        for span, end_ns in reversed(ends):
            span.end(end_time=end_ns)
        return len(ends)

    def _run_attributes(self, run: RecordedRun) -> dict[str, Any]:
        started, finished = run.started, run.finished
        attributes: dict[str, Any] = {"thinkloop.run_id": run.run_id}
        if started is not None:
            attributes |= {"thinkloop.strategy": started.strategy, "gen_ai.request.model": started.model}
            attributes |= {
                f"thinkloop.budget.{k}": v
                for k, v in started.budget.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        if finished is not None:
            attributes["thinkloop.stop_reason"] = finished.stop_reason
            if finished.stop_detail:
                attributes["thinkloop.stop_detail"] = finished.stop_detail
            if finished.verdict is not None:
                attributes["thinkloop.verdict"] = finished.verdict
            if finished.warnings:
                attributes["thinkloop.warnings"] = list(finished.warnings)
            if self.include_content and finished.feedback:
                attributes["thinkloop.feedback"] = finished.feedback
            if finished.answer_node is not None:
                attributes["thinkloop.answer_node"] = finished.answer_node
            if self.include_content and finished.answer is not None:
                attributes["output.value"] = finished.answer
        if self.include_content and started is not None:
            attributes["input.value"] = started.question
        return attributes

    def _describe(self, node: Node, run: RecordedRun, model: str | None, provider: str) -> tuple[str, Any, dict]:
        """The span's name, kind and attributes for one node."""
        otel = self._otel
        attributes: dict[str, Any] = {
            "thinkloop.run_id": run.run_id,
            "thinkloop.node.id": node.id,
            "thinkloop.node.kind": node.kind,
            "thinkloop.node.status": node.status,
            "thinkloop.node.depth": node.depth,
        }
        if node.strategy is not None:
            attributes["thinkloop.strategy"] = node.strategy
        if node.score is not None:
            attributes["thinkloop.score"] = node.score
        if node.latency_s is not None:
            attributes["thinkloop.latency_s"] = node.latency_s
        if node.data and isinstance(node.data.get("pruned"), str):
            attributes["thinkloop.pruned_reason"] = node.data["pruned"]
        if node.status == "failed":
            failure = failure_of(node)
            budget = failure is not None and failure.is_budget
            attributes["error.type"] = "budget_exhausted" if budget else "backend_error"
        if node.request is not None:
            return self._call(node, model, provider, attributes)
        if node.kind == "verify":
            attributes["openinference.span.kind"] = "EVALUATOR"
            if node.data and "accepted" in node.data:
                attributes["thinkloop.verdict.accepted"] = bool(node.data["accepted"])
            if self.include_content and node.data and node.data.get("feedback"):
                attributes["thinkloop.verdict.feedback"] = str(node.data["feedback"])
            if self.include_content and node.answer is not None:
                attributes["input.value"] = node.answer
            return "verify", otel.SpanKind.INTERNAL, attributes
        attributes["openinference.span.kind"] = "CHAIN"
        if self.include_content:
            if node.text is not None:
                attributes["output.value" if node.kind != "question" else "input.value"] = node.text
            if node.answer is not None:
                attributes["thinkloop.answer"] = node.answer
            if node.data:
                attributes["thinkloop.data"] = json.dumps(node.data, ensure_ascii=False, default=str)
        return node.kind, otel.SpanKind.INTERNAL, attributes

    def _call(self, node: Node, model: str | None, provider: str, attributes: dict[str, Any]) -> tuple[str, Any, dict]:
        request, completion, usage = node.request, node.completion, node.usage
        assert request is not None
        requested = model or (completion.model if completion is not None else None) or "unknown"
        attributes |= {
            "openinference.span.kind": "LLM",
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": requested,
            "llm.model_name": requested,
        }
        for key, value in (
            ("max_tokens", request.max_tokens),
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("seed", request.seed),
        ):
            if value is not None:
                attributes[f"gen_ai.request.{key}"] = value
        if request.n != 1:
            attributes["gen_ai.request.choice.count"] = request.n
        if request.stop:
            attributes["gen_ai.request.stop_sequences"] = list(request.stop)
        if completion is not None:
            if completion.model is not None:
                attributes["gen_ai.response.model"] = completion.model
            attributes["gen_ai.response.finish_reasons"] = [c.finish_reason or "" for c in completion.choices]
        if usage is not None:
            pairs = (
                ("gen_ai.usage.input_tokens", usage.prompt_tokens),
                ("gen_ai.usage.output_tokens", usage.completion_tokens),
                ("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens),
                ("gen_ai.usage.cache_read.input_tokens", usage.cached_prompt_tokens),
                ("llm.token_count.prompt", usage.prompt_tokens),
                ("llm.token_count.completion", usage.completion_tokens),
                ("llm.token_count.total", usage.total_tokens),
            )
            attributes |= {key: value for key, value in pairs if value is not None}
        if self.include_content:
            messages = [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in request.messages]
            attributes["gen_ai.input.messages"] = json.dumps(messages, ensure_ascii=False)
            attributes["input.value"] = request.messages[-1].content
            if completion is not None:
                outputs = [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": c.text}],
                        "finish_reason": c.finish_reason or "",
                    }
                    for c in completion.choices
                ]
                attributes["gen_ai.output.messages"] = json.dumps(outputs, ensure_ascii=False)
                attributes["output.value"] = completion.choices[0].text
            if node.answer is not None:
                attributes["thinkloop.answer"] = node.answer
        return f"chat {requested}", self._otel.SpanKind.CLIENT, attributes


def export_trace(
    source: str | Path | Iterable[Any],
    *,
    tracer_provider: TracerProvider | None = None,
    include_content: bool = False,
    provider: str | None = None,
) -> int:
    """Export a trace file (or its events) as spans; returns the number of spans made.

    Raises:
        ConfigurationError: OpenTelemetry is not installed (names the extra to install).
    """
    exporter = SpanExporter(tracer_provider=tracer_provider, include_content=include_content, provider=provider)
    events = load_trace(source) if isinstance(source, (str, Path)) else source
    return exporter.export_events(events)


class OtelSink:
    """A trace sink that exports each run as spans when it finishes (``strategy.run(..., sinks=[sink])``).

    Spans are made at the end of a run rather than as it goes, because a node's final state (pruned, its
    score, a vote's tally) is known only later; their times are the events' own. A run that never finishes
    is exported when the trace closes.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        include_content: bool = False,
        provider: str | None = None,
    ) -> None:
        self._exporter = SpanExporter(
            tracer_provider=tracer_provider, include_content=include_content, provider=provider
        )
        self._runs: dict[str, list[Any]] = {}
        self.spans = 0

    def __call__(self, event: Any) -> None:
        self._runs.setdefault(event.run_id, []).append(event)
        if isinstance(event, RunFinished):
            self.spans += self._exporter.export_events(self._runs.pop(event.run_id))

    def close(self) -> None:
        for run_id in list(self._runs):
            self.spans += self._exporter.export_events(self._runs.pop(run_id))
