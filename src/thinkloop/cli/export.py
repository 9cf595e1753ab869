"""``thinkloop export TRACES... --format FORMAT -o OUT``: verified traces as fine-tuning or preference data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export`` to a parent's subparsers."""
    from thinkloop.export.export import KEEPS
    from thinkloop.export.formats import FORMATS

    export = subparsers.add_parser(
        "export",
        help="turn verified traces into fine-tuning or preference data",
        description="Read traces (ask --trace, serve, bench run --traces) and write the replies a check "
        "accepted as supervised fine-tuning records, or accepted/rejected pairs for preference training. "
        "Provenance (trace, run, node, verdict, gold) goes to OUT's .provenance.jsonl sidecar, line for line. "
        "A trace that cannot be read whole is refused; cut-off, failed and budget-stopped replies are never "
        "exported.",
    )
    export.add_argument(
        "traces", nargs="+", type=Path, metavar="TRACE", help="trace files, or directories searched for *.jsonl"
    )
    export.add_argument(
        "--format", required=True, choices=FORMATS, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}"
    )
    export.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.jsonl", help="the file to write")
    export.add_argument(
        "--keep",
        choices=KEEPS,
        default="passed",
        metavar="RULE",
        help="what counts as good: passed (the check accepted it; default), correct (equal to "
        "the gold of --results) or passed+correct",
    )
    export.add_argument(
        "--results",
        type=Path,
        metavar="RESULTS.jsonl",
        help="the bench run results file that holds each trace's gold answer",
    )
    export.add_argument(
        "--prompt",
        choices=("question", "sent"),
        default="question",
        help="the user turn: the question alone (default) or the conversation as it was sent",
    )
    export.add_argument(
        "--thinking", action="store_true", help="include the model's visible thinking (hf-sft, trl-dpo)"
    )
    export.add_argument("--strategy", metavar="PATTERN", help="only runs whose strategy matches (e.g. 'cot*')")
    export.add_argument("--min-score", type=float, metavar="X", help="only replies whose check scored at least X")
    export.add_argument("--per-question", type=int, metavar="N", help="at most N records per question")
    export.add_argument(
        "--keep-duplicates", action="store_true", help="keep records whose question and reply were exported already"
    )
    return export


def main(args: argparse.Namespace) -> int:
    """Export; print what was read, written and left out; the exit status."""
    from thinkloop.export import ExportError, ExportOptions, export_traces

    options = ExportOptions(
        format=args.format,
        keep=args.keep,
        results=args.results,
        prompt=args.prompt,
        thinking=args.thinking,
        strategy=args.strategy,
        min_score=args.min_score,
        per_question=args.per_question,
        dedupe=not args.keep_duplicates,
    )
    try:
        report = export_traces(args.traces, args.output, options)
    except ExportError as exc:
        sys.stderr.write(f"thinkloop export: error: {' '.join(str(exc).split())}\n")
        return 1
    sys.stdout.write(report.summary() + "\n")
    if not report.records:
        sys.stderr.write("thinkloop export: error: nothing to export (see what was left out above)\n")
        return 1
    return 0
