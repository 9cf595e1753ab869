"""``thinkloop bench run`` and ``thinkloop bench report``.

The top-level ``thinkloop`` CLI calls :func:`add_parser` and :func:`main`; ``python -m thinkloop.bench.cli``
runs the same commands alone. Imports of rich, matplotlib, model backends and the data loaders happen inside
the commands, so ``thinkloop --help`` stays fast. Errors print one line (the data set's file:line and field)
and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FORMATS = ("table", "markdown", "json", "csv")


def _say(line: str) -> None:
    """One line on stderr, flushed (stdout is kept for the report itself)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` (with ``run`` and ``report``) to a parent's subparsers."""
    bench = subparsers.add_parser(
        "bench", help="benchmark strategies and models on a data set",
        description="Benchmark strategies and models: accuracy, tokens, latency and cost.",
    )
    commands = bench.add_subparsers(dest="bench_command", metavar="{run,report}")
    commands.required = True

    run = commands.add_parser(
        "run", help="run strategies x models over a data set, resumable",
        description="Run a grid of strategies x models over a data set. Records go to --out as each problem "
        "finishes; re-running the same command resumes.",
    )
    run.add_argument("data", metavar="DATA",
                     help="a JSONL file, a known set (gsm8k, math500, svamp, verifiable, verifiable-FAMILY), or "
                     "'simulated' with --simulated. Known sets ship inside thinkloop (used when --data-dir, "
                     "$THINKLOOP_DATA and ../shared/data have none): " + _known_sets_help())
    run.add_argument("--question-field", help="the question's field, or a template: '{Body} {Question}'")
    run.add_argument("--answer-field", help="the gold answer's field")
    run.add_argument("--id-field", help="the problem id's field (default: the line number)")
    run.add_argument("--data-dir", help="where known sets live (default: $THINKLOOP_DATA or ../shared/data)")
    run.add_argument("--limit", type=int, help="run N problems (the first N, or a --seed-ed sample)")
    run.add_argument("--seed", type=int, help="sample the --limit problems with this seed")
    run.add_argument("--ids", help="comma-separated problem ids to run")
    run.add_argument("--strategy", action="append", required=True, metavar="SPEC",
                     help="NAME[:key=value,...], e.g. cot, sc:n=8,adaptive=true (repeatable)")
    run.add_argument("--model", action="append", default=[], metavar="M",
                     help="a model on an OpenAI-compatible API (repeatable; default: the embedded SmolLM2)")
    run.add_argument("--base-url", action="append", default=[], metavar="URL",
                     help="the server for each --model, in order (one URL serves all; none: OpenAI's API)")
    run.add_argument("--threads", type=int, metavar="N",
                     help="CPU threads for the embedded model (default: all cores; 1 is faster on a busy machine)")
    run.add_argument("--simulated", type=float, metavar="P",
                     help="a simulated model right with probability P (scaling curves, demos, tests)")
    run.add_argument("--simulated-latency", type=float, default=0.0, metavar="S", help=argparse.SUPPRESS)
    run.add_argument("--concurrency", type=int, default=1, help="problems in flight per model (default 1)")
    run.add_argument("--budget-tokens", type=int, help="a hard token budget per problem")
    run.add_argument("--max-tokens", type=int, help="per-call completion limit for every strategy")
    run.add_argument("--check", metavar="CHECK",
                     help="judge every problem by a check instead of its gold answer, e.g. words:12, regex:P, "
                     "number:{answer}+-0.5 ({answer} is the gold), tests:FILE.py (problems with their own check "
                     "keep it)")
    run.add_argument("--out", required=True, metavar="FILE.jsonl", help="the results file (appended, resumed)")
    run.add_argument("--traces", metavar="DIR", help="write each problem's trace under DIR")
    run.add_argument("--retry-failed", action="store_true", help="redo problems whose record failed")
    run.add_argument("--prices", metavar="FILE", help="a JSON/TOML price table overriding the shipped one")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no table at the end")

    report = commands.add_parser(
        "report", help="summarise a results file", description="Summarise a results file: one row per config."
    )
    report.add_argument("results", metavar="RESULTS.jsonl")
    report.add_argument("--format", choices=FORMATS, default="table")
    report.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR")
    return bench


def _known_sets_help() -> str:
    from thinkloop.bench.datasets import known_sets_help

    return known_sets_help()


def main(args: argparse.Namespace) -> int:
    """Run the ``bench`` command ``args`` describes; the exit status."""
    from thinkloop.exceptions import ThinkloopError

    try:
        if args.bench_command == "run":
            return _run(args)
        return _report(args)
    except ThinkloopError as exc:
        _say(f"thinkloop bench: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("thinkloop bench: interrupted; re-run the same command to resume")
        return 130


def _backends(args: argparse.Namespace, dataset: Any) -> list[Any]:
    from thinkloop.exceptions import ConfigurationError

    if args.simulated is not None:
        from thinkloop.bench.simulated import SimulatedBackend

        return [SimulatedBackend.for_dataset(dataset, p=args.simulated, seed=args.seed or 0,
                                             latency=args.simulated_latency)]
    if not args.model:
        if args.base_url:
            raise ConfigurationError("--base-url needs a --model for each server")
        from thinkloop.backends.llamacpp import LlamaCppBackend

        return [LlamaCppBackend(n_threads=args.threads)]
    urls = args.base_url
    if len(urls) not in (0, 1, len(args.model)):
        raise ConfigurationError(f"{len(args.model)} --model but {len(urls)} --base-url: give one, or one each")
    from thinkloop.backends.openai import OpenAIBackend

    paired = urls * len(args.model) if len(urls) == 1 else urls or [None] * len(args.model)
    return [OpenAIBackend(model, base_url=url, max_concurrency=args.concurrency)
            for model, url in zip(args.model, paired, strict=True)]


def _run(args: argparse.Namespace) -> int:
    import anyio

    from thinkloop.bench.datasets import load_dataset
    from thinkloop.bench.prices import PriceTable
    from thinkloop.bench.report import summarize
    from thinkloop.bench.runner import Runner, RunSummary, make_configs
    from thinkloop.bench.store import ResultStore
    from thinkloop.exceptions import ConfigurationError

    for name in ("limit", "concurrency", "budget_tokens", "max_tokens", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    if args.data == "simulated":
        if args.simulated is None:
            raise ConfigurationError("the simulated data set needs --simulated P")
        from thinkloop.bench.datasets import subset
        from thinkloop.bench.simulated import simulated_dataset

        dataset = subset(simulated_dataset(args.limit or 1000), ids=ids)
    else:
        dataset = load_dataset(
            args.data, question_field=args.question_field, answer_field=args.answer_field,
            id_field=args.id_field, data_dir=args.data_dir, limit=args.limit, seed=args.seed, ids=ids,
        )
    prices = PriceTable.load(args.prices)
    backends = _backends(args, dataset)
    configs = make_configs([dataset], args.strategy, backends, max_tokens=args.max_tokens,
                           budget_tokens=args.budget_tokens, check=args.check)
    if args.check is not None and dataset.problems:  # a bad check fails before any model call
        from thinkloop.bench.checks import problem_verifier

        problem_verifier(dataset.problems[0], args.check)
    with ResultStore(args.out) as store:
        runner = Runner(store, concurrency=args.concurrency, retry_failed=args.retry_failed, prices=prices,
                        traces_dir=Path(args.traces) if args.traces else None)
        todo = len(runner.pending(configs))
        progress = _Progress(todo, quiet=args.quiet)
        runner.on_record = progress.update

        async def run_and_close() -> RunSummary:
            try:
                return await runner.run(configs)
            finally:
                with anyio.CancelScope(shield=True):
                    for backend in backends:
                        await backend.aclose()

        with progress:
            summary = anyio.run(run_and_close)
        ids = {c.id for c in configs}
        rows = summarize(r for r in store.records.values() if r.config in ids)
    if not args.quiet:
        from rich.console import Console

        from thinkloop.bench.report import rich_table

        Console(stderr=True, width=max(160, Console().width)).print(rich_table(rows))
        _say(f"ran {summary.ran}, skipped {summary.skipped} already recorded, failed {summary.failed}; "
             f"results in {args.out}")
    return 0


class _Progress:
    """A rich progress bar (done, accuracy so far, tokens, ETA) on a terminal; a line per 10 records when
    the output is a log file."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total = total
        self.quiet = quiet
        self.done = self.correct = self.finished = self.failed = self.tokens = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.quiet or not sys.stderr.isatty():
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(),
            TextColumn("acc {task.fields[accuracy]}  tokens {task.fields[tokens]}  failed {task.fields[failed]}"),
            TimeRemainingColumn(), transient=False,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("bench", total=self.total, accuracy="-", tokens=0, failed=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def update(self, record: Any) -> None:
        self.done += 1
        self.tokens += record.total_tokens
        if record.status == "failed":
            self.failed += 1
        else:
            self.finished += 1
            self.correct += bool(record.correct)
        accuracy = f"{100 * self.correct / self.finished:.1f}%" if self.finished else "-"
        if self._bar is not None:
            self._bar.update(self._task, advance=1, accuracy=accuracy, tokens=self.tokens, failed=self.failed)
        elif not self.quiet and (self.done % 10 == 0 or self.done == self.total):
            _say(f"[{self.done}/{self.total}] {record.config}: accuracy so far {accuracy}, "
                 f"tokens {self.tokens}, failed {self.failed}")


def _report(args: argparse.Namespace) -> int:
    from thinkloop.bench.report import load_summaries, render, rich_table, sc_curves
    from thinkloop.exceptions import DatasetError

    if not Path(args.results).is_file():
        raise DatasetError(f"{args.results}: no such results file")
    summaries = load_summaries(args.results)
    if args.format == "table":
        from rich.console import Console

        Console(width=max(160, Console().width)).print(rich_table(summaries))
    else:
        sys.stdout.write(render(summaries, args.format))
    if args.plots:
        from thinkloop.bench.plots import write_plots

        for path in write_plots(summaries, sc_curves(summaries), args.plots):
            _say(f"wrote {path}")
    return 0


def standalone(argv: list[str] | None = None) -> int:
    """``python -m thinkloop.bench.cli run ...``: the bench commands without the top-level CLI."""
    parser = argparse.ArgumentParser(prog="thinkloop")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(standalone())
