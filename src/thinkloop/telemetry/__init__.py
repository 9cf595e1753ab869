"""OpenTelemetry export of runs (the optional ``thinkloop[otel]`` extra; imported only when used)."""

from __future__ import annotations

from thinkloop.telemetry.otel import INSTALL_HINT, OtelSink, SpanExporter, export_trace, guess_provider

__all__ = ["INSTALL_HINT", "OtelSink", "SpanExporter", "export_trace", "guess_provider"]
