"""One self-contained HTML page for a trace: template, style, script and data all inline.

The page loads nothing: a Content-Security-Policy forbids every fetch, and only the inline script and style
carrying this page's nonce run. Model output is data, never markup: the trace goes into a
``<script type="application/json">`` block with ``<``, ``>``, ``&`` and the JavaScript line separators
escaped, and the script puts text on the page only through ``textContent``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

from thinkloop.runtime.trace import load_trace
from thinkloop.view.document import build_document

_ASSETS = files("thinkloop.view") / "assets"
_PLACEHOLDER = re.compile(r"\{\{(NONCE|STYLE|SCRIPT|DATA)\}\}")
_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))

CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src data:; "
    "connect-src 'none'; font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
)


def embed_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element: no ``</script>``, no ``<!--``, no raw U+2028."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for character, escape in _JSON_ESCAPES:  # str.replace runs in C; str.translate would take seconds on 10 MB
        text = text.replace(character, escape)
    return text


def trace_files(path: str | Path) -> list[Path]:
    """A trace file, or every ``*.jsonl`` under a directory (``bench run --traces DIR``), in name order."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        if not found:
            raise FileNotFoundError(f"no *.jsonl trace files under {path}")
        return found
    if not path.exists():
        raise FileNotFoundError(f"no such trace file: {path}")
    return [path]


def read_events(source: str | Path | Iterable[Any]) -> list[Any]:
    """Events from a trace file, a directory of traces, or an iterable of events (a live run's)."""
    if isinstance(source, (str, Path)):
        return [event for path in trace_files(source) for event in _load(path)]
    return list(source)


def _load(path: Path) -> list[Any]:
    """One trace file's events; a file that is not a trace is one line saying what it looks like instead."""
    try:
        events = load_trace(path)
    except ValueError as exc:
        _not_results(path)
        where = str(exc).split(": not a trace event:")[0]
        raise ValueError(
            f"{where}: not a trace event: a trace is what 'ask --trace FILE' or 'bench run --traces DIR' writes"
        ) from None
    if not events:  # one line that is not an event reads as a torn last line
        _not_results(path)
    return events


def _not_results(path: Path) -> None:
    first = _first_object(path)
    if first is not None and {"config", "status", "id"} <= first.keys():
        raise ValueError(
            f"{path} is a bench results file, not a trace: see it with 'thinkloop bench report "
            f"{path}', or write traces with 'bench run --traces DIR' and view DIR"
        )


def _first_object(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            value = json.loads(handle.readline())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def render_trace_html(trace_path_or_events: str | Path | Iterable[Any], run_id: str | None = None) -> str:
    """The viewer page for a trace (a file, a directory of them, or events), every run or only ``run_id``.

    Raises:
        FileNotFoundError: the path holds no trace.
        ValueError: a line is not a trace event, or ``run_id`` is not in the trace.
    """
    document = build_document(read_events(trace_path_or_events), run_id=run_id)
    nonce = secrets.token_urlsafe(18)
    parts = {
        "NONCE": nonce,
        "STYLE": (_ASSETS / "viewer.css").read_text(encoding="utf-8"),
        "SCRIPT": (_ASSETS / "viewer.js").read_text(encoding="utf-8"),
        "DATA": embed_json(document),
    }
    template = (_ASSETS / "viewer.html").read_text(encoding="utf-8").replace("{{CSP}}", CSP.format(nonce=nonce))
    # One pass, so nothing inserted (the data above all) is ever scanned for placeholders.
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], template)


def write_trace_html(
    trace_path_or_events: str | Path | Iterable[Any], out: str | Path, run_id: str | None = None
) -> Path:
    """Render the page and write it to ``out``; returns the path written."""
    out = Path(out)
    out.write_text(render_trace_html(trace_path_or_events, run_id=run_id), encoding="utf-8")
    return out


def default_output(trace_path: str | Path) -> Path:
    """Where ``thinkloop view`` writes by default: beside the trace, ``.html`` for ``.jsonl``."""
    path = Path(trace_path)
    if path.is_dir():
        return path / "traces.html"
    return path.with_suffix(".html")
