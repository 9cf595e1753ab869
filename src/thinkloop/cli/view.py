"""``thinkloop view TRACE.jsonl [-o FILE.html] [--open]``: write the trace viewer page for a trace.

The top-level ``thinkloop`` CLI calls :func:`add_parser` and :func:`main`. A directory (``bench run --traces
DIR``) makes one page with a run picker over every trace under it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``view`` to a parent's subparsers."""
    view = subparsers.add_parser(
        "view",
        help="write a trace as a self-contained HTML page",
        description="Write one self-contained HTML page showing a trace: each run's answer, totals and budget, "
        "its reasoning graph, the calls' details and a timeline. The page loads nothing from the network.",
    )
    view.add_argument(
        "trace",
        type=Path,
        metavar="TRACE",
        help="a JSONL trace (ask --trace), or a directory of them (bench run --traces DIR)",
    )
    view.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE.html",
        help="where to write the page (default: beside the trace, .html for .jsonl)",
    )
    view.add_argument("--run", metavar="RUN_ID", help="show only this run")
    view.add_argument("--open", action="store_true", help="open the page in the default web browser")
    return view


def main(args: argparse.Namespace) -> int:
    """Write the page; name it on stdout; the exit status."""
    from thinkloop.view.page import default_output, write_trace_html

    out = args.output if args.output is not None else default_output(args.trace)
    try:
        written = write_trace_html(args.trace, out, run_id=args.run)
    except ValueError as exc:  # a line that is not a trace event, an unknown run: one line, no traceback
        sys.stderr.write(f"thinkloop view: error: {' '.join(str(exc).split())}\n")
        return 1
    sys.stdout.write(f"{written}\n")
    if args.open:
        open_in_browser(written)
    return 0


def open_in_browser(path: Path) -> None:
    """Open a written page with the user's browser (a local file: nothing is served)."""
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        sys.stderr.write(f"thinkloop: could not start a web browser; open {path} yourself\n")


def write_run_page(source: Path | list[Any], run_id: str | None = None) -> Path:
    """``thinkloop ask --view``: the run's page beside its trace file (which may hold earlier runs too), or in
    a new temporary file."""
    import os
    import tempfile

    from thinkloop.view.page import default_output, write_trace_html

    if isinstance(source, Path):
        return write_trace_html(source, default_output(source), run_id=run_id)
    handle, name = tempfile.mkstemp(prefix="thinkloop-", suffix=".html")
    os.close(handle)
    return write_trace_html(source, name, run_id=run_id)
