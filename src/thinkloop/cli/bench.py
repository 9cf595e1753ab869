"""``thinkloop bench run`` and ``thinkloop bench report``.

The top-level ``thinkloop`` CLI calls :func:`add_parser` and :func:`main`; ``python -m thinkloop.cli.bench``
runs the same commands alone. Imports of rich, matplotlib, model backends and the data loaders happen inside
the commands, so ``thinkloop --help`` stays fast. Errors print one line (the data set's file:line and field)
and exit non-zero; a run in which problems failed exits 1 after a summary line saying how to redo them.
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
        "bench",
        help="benchmark strategies and models on a data set",
        description="Benchmark strategies and models: accuracy, tokens, latency and cost.",
    )
    commands = bench.add_subparsers(dest="bench_command", metavar="{run,report}")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run strategies x models over a data set, resumable",
        description="Run a grid of strategies x models over a data set. Records go to --out as each problem "
        "finishes; re-running the same command resumes.",
    )
    run.add_argument(
        "data",
        metavar="DATA",
        help="a JSONL file, a known set (gsm8k, math500, svamp, verifiable, verifiable-FAMILY), or "
        "'simulated' with --simulated. Known sets ship inside thinkloop (used when --data-dir, "
        "$THINKLOOP_DATA and ../shared/data have none): " + _known_sets_help(),
    )
    run.add_argument(
        "--question-field",
        metavar="FIELD",
        help="the question's field, or a template: '{Body} {Question}' (a JSONL file needs it)",
    )
    run.add_argument("--answer-field", metavar="FIELD", help="the gold answer's field (a JSONL file needs it)")
    run.add_argument("--id-field", metavar="FIELD", help="the problem id's field (default: the line number)")
    run.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where known sets live (default: $THINKLOOP_DATA or ../shared/data, else the copies "
        "shipped inside thinkloop)",
    )
    run.add_argument(
        "--limit", type=int, metavar="N", help="run N problems (the first N, or a --seed-ed sample; default: all)"
    )
    run.add_argument("--seed", type=int, metavar="N", help="sample the --limit problems with this seed")
    run.add_argument("--ids", metavar="ID,...", help="comma-separated problem ids to run")
    run.add_argument(
        "--strategy",
        action="append",
        required=True,
        metavar="SPEC",
        help="NAME[:key=value,...], e.g. cot, sc:n=8,adaptive=true (repeatable)",
    )
    run.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="a model on an OpenAI-compatible API, or a .gguf file to run in-process (repeatable; "
        "default: the embedded SmolLM2-135M-Instruct)",
    )
    run.add_argument(
        "--base-url",
        action="append",
        default=[],
        metavar="URL",
        help="the server for each served --model, in order (one URL serves all; default: the "
        "OpenAI API, or OPENAI_BASE_URL when it is set)",
    )
    run.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for the embedded model (default: $THINKLOOP_THREADS or measured)",
    )
    run.add_argument(
        "--simulated",
        type=float,
        metavar="P",
        help="a simulated model right with probability P (scaling curves, demos, tests)",
    )
    run.add_argument("--simulated-latency", type=float, default=0.0, metavar="S", help=argparse.SUPPRESS)
    run.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="problems in flight per model (default: 1)"
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds a server's reply may take to start (default 120; 10 s to connect); the check "
        "of each server before the grid waits at most 10 s or this",
    )
    run.add_argument("--budget-tokens", type=int, metavar="N", help="a hard token budget per problem")
    run.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help="per-call completion limit for every strategy (default: each strategy's own)",
    )
    run.add_argument(
        "--check",
        metavar="CHECK",
        help="judge every problem by a check instead of its gold answer, e.g. words:12, regex:P, "
        "number:{answer}+-0.5 ({answer} is the gold), tests:FILE.py (problems with their own check "
        "keep it)",
    )
    run.add_argument("--out", required=True, metavar="FILE.jsonl", help="the results file (appended, resumed)")
    run.add_argument("--traces", metavar="DIR", help="write each problem's trace under DIR")
    run.add_argument("--retry-failed", action="store_true", help="redo problems whose record failed")
    run.add_argument("--prices", metavar="FILE", help="a JSON/TOML price table overriding the shipped one")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no table at the end")
    run.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the problems on Ray actors (pip install 'thinkloop[ray]'): no ADDRESS or 'local' "
        "starts Ray on this machine, loopback only; an address joins a cluster; --concurrency is "
        "then per actor",
    )
    run.add_argument("--ray-actors", type=int, metavar="N", help="Ray actors (default: one per CPU)")

    report = commands.add_parser(
        "report", help="summarise a results file", description="Summarise a results file: one row per config."
    )
    report.add_argument("results", metavar="RESULTS.jsonl", help="a results file from bench run")
    report.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        metavar="FORMAT",
        help="table (fits the terminal), or markdown, json, csv with every column (default: table)",
    )
    report.add_argument(
        "--plots",
        metavar="DIR",
        help="write PNG plots into DIR (needs the plots extra: pip install 'thinkloop[plots]')",
    )
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
    from thinkloop.strategies.registry import build_strategy, needs_logprobs

    logprobs = any(needs_logprobs(build_strategy(spec)) for spec in args.strategy)  # in-process models keep them

    if args.simulated is not None:
        from thinkloop.bench.simulated import SimulatedBackend

        return [
            SimulatedBackend.for_dataset(dataset, p=args.simulated, seed=args.seed or 0, latency=args.simulated_latency)
        ]
    from thinkloop.backends.resolve import resolve_backend, target_of

    if not args.model:
        if args.base_url:
            raise ConfigurationError("--base-url needs a --model for each server")
        return [resolve_backend(None, n_threads=args.threads, logprobs=logprobs)]
    served = [m for m in args.model if not target_of(m).in_process]  # a plugin takes a URL too, when paired
    urls = args.base_url
    if urls and not served:
        raise ConfigurationError(
            "--base-url is for served models, and every --model here runs in-process (a .gguf name or a file)"
        )
    if len(urls) not in (0, 1, len(served)):
        raise ConfigurationError(f"{len(served)} --model but {len(urls)} --base-url: give one, or one each")
    paired = iter(urls * len(served) if len(urls) == 1 else urls or [None] * len(served))
    options = {"max_concurrency": args.concurrency, "timeout": _timeout(args.timeout), "check_server": True}
    backends: list[Any] = []
    for model in args.model:  # in the order given: the grid and the table follow it
        url = None if target_of(model).in_process else next(paired)
        backends.append(resolve_backend(model, url, n_threads=args.threads, logprobs=logprobs, server_options=options))
    return backends


def _timeout(seconds: float | None) -> Any:
    """``--timeout``: the read timeout, over the backend's defaults for the other phases (``None``: all
    defaults)."""
    if seconds is None:
        return None
    import httpx2

    from thinkloop.backends.openai import DEFAULT_TIMEOUT

    return httpx2.Timeout(**(DEFAULT_TIMEOUT | {"read": seconds, "connect": min(DEFAULT_TIMEOUT["connect"], seconds)}))


def _check_logprobs(configs: list[Any]) -> None:
    """A strategy that reads token log-probabilities on a model that gives none fails every problem: say so
    once, before any call."""
    from thinkloop.exceptions import ConfigurationError
    from thinkloop.strategies.registry import needs_logprobs

    for config in configs:
        if needs_logprobs(config.strategy) and not config.backend.capabilities.logprobs:
            raise ConfigurationError(
                f"{config.spec} reads token log-probabilities and {config.backend.name} gives none "
                "(an in-process model or an OpenAI-compatible server does; the simulated model does not)"
            )


def _check_specs(specs: list[str], max_tokens: int | None) -> None:
    """Every spec builds, and none asks for a verifier the benchmark does not give (one line each)."""
    from thinkloop.exceptions import ConfigurationError
    from thinkloop.strategies.registry import build_strategy, needs_verifier

    for spec in specs:
        strategy = build_strategy(spec, **({} if max_tokens is None else {"max_tokens": max_tokens}))
        needed = needs_verifier(strategy)
        if needed is not None:
            raise ConfigurationError(f"{spec}: {needed} needs a verifier, and bench run gives none; leave it at auto")


def _run(args: argparse.Namespace) -> int:
    import anyio

    from thinkloop.bench.datasets import load_dataset
    from thinkloop.bench.report import summarize
    from thinkloop.bench.runner import Runner, RunSummary, make_configs
    from thinkloop.bench.store import ResultStore
    from thinkloop.exceptions import ConfigurationError
    from thinkloop.pricing import PriceTable

    for name in ("limit", "concurrency", "budget_tokens", "max_tokens", "threads", "ray_actors"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigurationError(f"--timeout must be more than 0 seconds, got {args.timeout}")
    executor = _executor(args)
    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    if args.data == "simulated":
        if args.simulated is None:
            raise ConfigurationError("the simulated data set needs --simulated P")
        from thinkloop.bench.datasets import subset
        from thinkloop.bench.simulated import simulated_dataset

        dataset = subset(simulated_dataset(args.limit or 1000), ids=ids)
    else:
        dataset = load_dataset(
            args.data,
            question_field=args.question_field,
            answer_field=args.answer_field,
            id_field=args.id_field,
            data_dir=args.data_dir,
            limit=args.limit,
            seed=args.seed,
            ids=ids,
        )
    prices = PriceTable.load(args.prices)
    if args.check is not None and dataset.problems:  # a bad check fails before any model call
        from thinkloop.bench.checks import problem_verifier

        problem_verifier(dataset.problems[0], args.check)
    _check_specs(args.strategy, args.max_tokens)
    if args.simulated is not None:
        # One simulated model per config: its draws then depend on the config and problem only, never on
        # which other configs ran before it in the same command.
        backends = []
        configs = []
        for spec in args.strategy:
            backends += _backends(args, dataset)
            configs += make_configs(
                [dataset],
                [spec],
                backends[-1:],
                max_tokens=args.max_tokens,
                budget_tokens=args.budget_tokens,
                check=args.check,
            )
    else:
        backends = _backends(args, dataset)
        configs = make_configs(
            [dataset],
            args.strategy,
            backends,
            max_tokens=args.max_tokens,
            budget_tokens=args.budget_tokens,
            check=args.check,
        )
    _check_logprobs(configs)
    with ResultStore(args.out) as store:
        runner = Runner(
            store,
            concurrency=args.concurrency,
            retry_failed=args.retry_failed,
            prices=prices,
            traces_dir=Path(args.traces) if args.traces else None,
            executor=executor,
        )
        todo = len(runner.pending(configs))
        progress = _Progress(todo, quiet=args.quiet)
        runner.on_record = progress.update

        async def run_and_close() -> RunSummary:
            try:
                if args.simulated is None:
                    return await runner.run(configs)
                total = RunSummary()
                for config in configs:  # in order, so the results file reads the same on every run
                    done = await runner.run([config])
                    total.ran, total.skipped = total.ran + done.ran, total.skipped + done.skipped
                    total.failed, total.correct = total.failed + done.failed, total.correct + done.correct
                    total.records += done.records
                return total
            finally:
                with anyio.CancelScope(shield=True):
                    for backend in backends:
                        await backend.aclose()

        with progress:
            summary = anyio.run(run_and_close)
        config_ids = {c.id for c in configs}
        rows = summarize(r for r in store.records.values() if r.config in config_ids)
    if not args.quiet:
        from rich.console import Console

        from thinkloop.bench.report import rich_table

        console = Console(stderr=True)
        console.print(rich_table(rows, width=console.width))
    if not args.quiet or summary.failed:
        redo = "; re-run with --retry-failed to redo the failed ones" if summary.failed else ""
        _say(
            f"ran {summary.ran}, skipped {summary.skipped} already recorded, failed {summary.failed}{redo}; "
            f"results in {args.out}"
        )
    return 1 if summary.failed else 0


def _executor(args: argparse.Namespace) -> Any:
    """``--ray [ADDRESS]``: a Ray executor (Ray is imported only when the run starts)."""
    from thinkloop.exceptions import ConfigurationError

    if args.ray is None:
        if args.ray_actors is not None:
            raise ConfigurationError("--ray-actors needs --ray")
        return None
    from thinkloop.bench.executors.ray_executor import RayExecutor, import_ray

    import_ray()  # says how to install Ray before anything runs
    return RayExecutor(args.ray, actors=args.ray_actors)


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
            TextColumn("[bold]bench"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[accuracy]}  tokens {task.fields[tokens]}  failed {task.fields[failed]}"),
            TimeRemainingColumn(),
            transient=False,
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
            _say(
                f"[{self.done}/{self.total}] {record.strategy} on {record.model}: accuracy so far {accuracy}, "
                f"tokens {self.tokens}, failed {self.failed}"
            )


def _report(args: argparse.Namespace) -> int:
    from thinkloop.bench.report import load_summaries, render, rich_table, sc_curves
    from thinkloop.exceptions import ConfigurationError, DatasetError

    if not Path(args.results).is_file():
        raise DatasetError(f"{args.results}: no such results file")
    if args.plots:
        try:
            import matplotlib  # noqa: F401  (checked before anything is printed)
        except ImportError:
            raise ConfigurationError(
                "--plots needs matplotlib, which is not installed: pip install 'thinkloop[plots]'"
            ) from None
    summaries = load_summaries(args.results)
    if args.format == "table":
        from rich.console import Console

        console = Console()
        console.print(rich_table(summaries, width=console.width))
    else:
        sys.stdout.write(render(summaries, args.format))
    if args.plots:
        from thinkloop.bench.plots import write_plots

        for path in write_plots(summaries, sc_curves(summaries), args.plots):
            _say(f"wrote {path}")
    return 0


def standalone(argv: list[str] | None = None) -> int:
    """``python -m thinkloop.cli.bench run ...``: the bench commands without the top-level CLI."""
    parser = argparse.ArgumentParser(prog="thinkloop")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(standalone())
