"""The trace viewer: a JSONL trace becomes one self-contained HTML page (``thinkloop view``)."""

from __future__ import annotations

from thinkloop.view.page import default_output, render_trace_html, write_trace_html

__all__ = ["default_output", "render_trace_html", "write_trace_html"]
