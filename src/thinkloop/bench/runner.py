"""The benchmark runner: a grid of (data set × strategy × backend), one record per (config, problem).

Each backend gets one :class:`Engine` and ``concurrency`` workers, so problems for a slow local model queue
while a hosted API runs in parallel. Every problem is its own run under its own budget. Records are appended
to the :class:`ResultStore` as each problem finishes, so re-running the same command resumes: problems with
a record are skipped; ``retry_failed`` redoes only the failed ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from thinkloop.backends.base import Backend
from thinkloop.bench.checks import judged, problem_verifier
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.health import UNREACHABLE_LIMIT, ProblemCalls, ServerWatch, check_server
from thinkloop.bench.store import Record, ResultStore
from thinkloop.pricing import PriceTable, run_cost
from thinkloop.runtime.budget import Budget
from thinkloop.runtime.engine import Engine
from thinkloop.runtime.result import Result
from thinkloop.runtime.trace import redact
from thinkloop.strategies.base import Strategy
from thinkloop.strategies.registry import build_strategy, parse_options, spec_of, split_spec

if TYPE_CHECKING:
    from thinkloop.bench.executors import Executor

CANDIDATE_KINDS = ("generate", "revise")
"""Graph nodes whose text is a full attempt at the answer: what pass@k looks at."""


def answers_equivalent(prediction: str, gold: str) -> bool:
    """Math-aware equivalence (``14.0`` equals ``14``, ``\\frac12`` equals ``0.5``)."""
    from thinkloop.verifiers import extract

    return bool(extract.answers_equivalent(prediction, gold))


@dataclass(frozen=True)
class Config:
    """One cell of the grid: a strategy spec on a backend over a data set."""

    spec: str
    strategy: Strategy
    backend: Backend
    dataset: Dataset
    budget_tokens: int | None = None
    explicit: frozenset[str] = frozenset()
    """Options the user set (kept in the id even when they equal the default: ``sc:n=8`` stays readable)."""
    check: str | None = None
    """A check for every problem (``--check``); problems that carry their own check use theirs."""

    @property
    def id(self) -> str:
        """Stable across runs: the data set, the strategy's canonical spec (every option set or changed, so a
        different ``max_tokens`` is a different config), the model and the token budget."""
        parts = [self.dataset.name, canonical_spec(self.strategy, self.explicit), backend_label(self.backend)]
        if self.budget_tokens is not None:
            parts.append(f"budget={self.budget_tokens}")
        if self.check is not None:
            parts.append(f"check={self.check}")
        return " | ".join(parts)

    @property
    def settings(self) -> str:
        """A fingerprint of every effective option, defaults included. The id leaves defaults out to stay
        readable; when a strategy's defaults change between versions, this changes, and resume re-runs the
        problems instead of mixing results from two different settings under one id."""
        config = self.strategy.config
        options = config.model_dump(mode="json")
        for key, info in type(config).model_fields.items():
            # An option added later that changes nothing at its default (reread=false) stays out, so results
            # stored before it existed still resume under the same fingerprint.
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("unfingerprinted_default") and getattr(config, key) == info.default:
                options.pop(key, None)
        resolved = {
            "strategy": type(self.strategy).name,
            "options": options,
            "model": backend_label(self.backend),
            "budget_tokens": self.budget_tokens,
        }
        if self.strategy.inner is not None:
            resolved["inner"] = repr(self.strategy.inner)
        return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]


def backend_label(backend: Backend) -> str:
    """The model's name, and the server's address when it is not the OpenAI API: the same model served by
    two servers is two configs, never one with mixed records."""
    base_url = getattr(backend, "base_url", None)
    if not base_url or "api.openai.com" in base_url:
        return backend.name
    return f"{backend.name}@{base_url.split('://', 1)[-1].rstrip('/')}"


def canonical_spec(strategy: Strategy, explicit: frozenset[str] = frozenset()) -> str:
    """``name:key=value,...`` with sorted keys: the options that differ from the defaults or were given."""
    values = strategy.config.model_dump(mode="json")
    changed = strategy.config.model_dump(mode="json", exclude_defaults=True)
    options = {k: v for k, v in values.items() if k in changed or k in explicit}
    if strategy.inner is not None:  # sc:n=5,inner=cot is not sc:n=5 (ids without an inner stay as they were)
        options["inner"] = canonical_spec(strategy.inner)
    return spec_of(type(strategy).name, options)


def make_configs(
    datasets: Sequence[Dataset],
    specs: Sequence[str],
    backends: Sequence[Backend],
    *,
    max_tokens: int | None = None,
    budget_tokens: int | None = None,
    check: str | None = None,
) -> list[Config]:
    """The grid, data set-major then strategy then backend (so cheap strategies listed first finish first).

    Strategies are built up front, so a bad spec fails before any model call.
    """
    overrides: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    configs = []
    for dataset in datasets:
        for spec in specs:
            for backend in backends:
                strategy = build_strategy(spec, **overrides)
                given = frozenset(parse_options(split_spec(spec)[1])) | frozenset(overrides)
                configs.append(Config(spec, strategy, backend, dataset, budget_tokens, given, check))
    return configs


@dataclass
class RunSummary:
    """What one invocation did: ``skipped`` problems already had a record."""

    ran: int = 0
    skipped: int = 0
    failed: int = 0
    correct: int = 0
    records: list[Record] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:120] or "x"


def attempts(result: Result) -> tuple[int, list[str]]:
    """How many full attempts the run made (k) and the answers they gave: the strategy's own
    :attr:`Result.attempts` when it reports them, else the graph's generate/revise nodes. An attempt with no
    extractable answer counts in k and adds no answer."""
    if result.attempts:
        return len(result.attempts), sorted(result.answers)
    from thinkloop.verifiers.extract import extract_answer

    k, found = 0, []
    for node in result.graph.nodes():
        if node.kind in CANDIDATE_KINDS and node.status == "done" and node.text is not None:
            k += 1
            answer = node.answer if node.answer is not None else extract_answer(node.text)
            if answer is not None:
                found.append(answer)
    return k, found


def _equivalent(prediction: str | None, gold: str) -> bool:
    return prediction is not None and answers_equivalent(prediction, gold)


def record_for(
    config: Config,
    problem: Problem,
    result: Result,
    prices: PriceTable,
    trace: str | None,
    *,
    compare_gold: bool = True,
) -> Record:
    """Turn a run's result into its record: an infrastructure error is ``failed``, never a wrong answer.

    ``compare_gold=False`` leaves ``correct`` and ``pass_at_k`` to a check (a task whose gold is a reference
    program or a description, not an answer to compare with)."""
    usage = result.usage
    price = prices.lookup(config.backend.name)
    cost = run_cost(price, usage) if price is not None else 0.0
    common: dict[str, Any] = {
        "config": config.id,
        "strategy": config.spec,
        "model": config.backend.name,
        "dataset": config.dataset.name,
        "id": problem.id,
        "gold": problem.answer,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_prompt_tokens,
        "estimated_reasoning_tokens": usage.estimated_reasoning_tokens,
        "calls": usage.calls,
        "calls_without_usage": usage.calls_without_usage,
        "latency_s": round(result.latency_s, 4),
        "cost": cost,
        "stop_reason": result.stop_reason,
        "verdict": result.verdict,
        "warnings": list(result.warnings) or None,
        "trace": trace,
        "settings": config.settings,
    }
    if result.stop_reason == "error":
        return Record(status="failed", prediction=result.answer, error=result.error or "error", **common)
    k, answers = attempts(result)
    pass_at_k = any(_equivalent(a, problem.answer) for a in answers) if compare_gold else None
    correct = _equivalent(result.answer, problem.answer) if compare_gold else None
    return Record(
        status="done",
        prediction=result.answer,
        correct=correct,
        k=k,
        pass_at_k=pass_at_k,
        answers=answers,
        **common,
    )


def failed_record(
    config: Config, problem: Problem, error: BaseException, latency_s: float, trace: str | None
) -> Record:
    return Record(
        config=config.id,
        strategy=config.spec,
        model=config.backend.name,
        dataset=config.dataset.name,
        id=problem.id,
        status="failed",
        gold=problem.answer,
        latency_s=round(latency_s, 4),
        stop_reason="error",
        error=redact(f"{type(error).__name__}: {error}"),
        trace=trace,
        settings=config.settings,
    )


@dataclass
class Runner:
    """Runs configs into a store.

    Args:
        store: where records go (and which problems are already done).
        concurrency: problems in flight per backend (and calls in flight, unless the backend allows fewer).
        traces_dir: where each problem's trace goes (``None``: no traces).
        retry_failed: redo problems whose latest record failed.
        prices: the price table for the cost column.
        on_record: called after each record is written (progress bars).
        stop_after_unreachable: problems in a row that could not reach a backend's server before that
            backend's work stops (see :mod:`thinkloop.bench.health`); :meth:`run` then raises
            :class:`BackendUnavailable` naming the server, after the other backends finish (in this process;
            an executor runs problems elsewhere and has no such watch).
        executor: where the problems run (``None``: here, one :class:`Engine` per backend; a
            :class:`~thinkloop.bench.executors.RayExecutor` spreads them over Ray actors). This process stays
            the only writer of the store either way.
    """

    store: ResultStore
    concurrency: int = 1
    traces_dir: Path | None = None
    retry_failed: bool = False
    prices: PriceTable = field(default_factory=PriceTable.default)
    on_record: Callable[[Record], None] | None = None
    stop_after_unreachable: int = UNREACHABLE_LIMIT
    executor: Executor | None = None

    def pending(self, configs: Sequence[Config]) -> list[tuple[Config, Problem]]:
        """The (config, problem) pairs still to run, in grid order: never recorded, recorded under other
        effective settings (a strategy's defaults changed), or failed when retrying failures."""
        todo = []
        for config in configs:
            settings = config.settings
            for problem in config.dataset.problems:
                record = self.store.records.get((config.id, problem.id))
                stale = record is not None and record.settings not in (None, settings)
                if record is None or stale or (record.status == "failed" and self.retry_failed):
                    todo.append((config, problem))
        return todo

    async def run(self, configs: Sequence[Config]) -> RunSummary:
        summary = RunSummary()
        todo = self.pending(configs)
        summary.skipped = sum(len(c.dataset) for c in configs) - len(todo)
        if self.executor is not None:
            for backend in {id(config.backend): config.backend for config, _ in todo}.values():
                failure = await check_server(backend)  # the same gate as in one process, from the driver
                if failure is not None:
                    raise failure
            await self.executor.run(self, todo, lambda record: self._write(record, summary))
            return summary
        by_backend: dict[int, list[tuple[Config, Problem]]] = {}
        for job in todo:
            by_backend.setdefault(id(job[0].backend), []).append(job)
        stopped: list[ServerWatch] = []
        async with anyio.create_task_group() as group:
            for jobs in by_backend.values():
                group.start_soon(self._run_backend, jobs, summary, stopped)
        if stopped:
            raise stopped[0].error()
        return summary

    async def _run_backend(
        self, jobs: list[tuple[Config, Problem]], summary: RunSummary, stopped: list[ServerWatch]
    ) -> None:
        backend = jobs[0][0].backend
        failure = await check_server(backend)  # the gate: a dead, hung or unauthorised server stops here
        if failure is not None:
            stopped.append(ServerWatch(backend, gate=failure))
            return
        limit = backend.capabilities.max_concurrency
        engine = Engine(backend, max_concurrency=self.concurrency if limit is None else min(limit, self.concurrency))
        watch = ServerWatch(backend, limit=self.stop_after_unreachable)
        send, receive = anyio.create_memory_object_stream[tuple[Config, Problem]](len(jobs))
        async with send:
            for job in jobs:
                send.send_nowait(job)
        async with anyio.create_task_group() as group:
            for _ in range(max(1, self.concurrency)):
                group.start_soon(self._worker, engine, receive.clone(), summary, watch, group.cancel_scope)
            receive.close()
        if watch.streak >= watch.limit:
            watch.release()  # never written: the same command runs these problems again
            stopped.append(watch)
        else:
            for record in watch.release():
                self._write(record, summary)

    async def _worker(
        self, engine: Engine, jobs: Any, summary: RunSummary, watch: ServerWatch, scope: anyio.CancelScope
    ) -> None:
        async with jobs:
            async for config, problem in jobs:
                calls = ProblemCalls()
                record = await self.run_one(engine, config, problem, calls)
                action = watch.observe(calls, record)
                if action == "stop":
                    scope.cancel()  # problems in flight are not recorded: they run again next time
                    return
                if action == "write":
                    if watch.streak == 0:
                        for held in watch.release():
                            self._write(held, summary)
                    self._write(record, summary)

    def _write(self, record: Record, summary: RunSummary) -> None:
        """The one place records reach the store (whichever executor ran them)."""
        self.store.append(record)
        summary.ran += 1
        summary.failed += record.status == "failed"
        summary.correct += bool(record.correct)
        summary.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    async def run_one(
        self, engine: Engine, config: Config, problem: Problem, calls: ProblemCalls | None = None
    ) -> Record:
        return await run_item(engine, config, problem, prices=self.prices, traces_dir=self.traces_dir, calls=calls)


async def run_item(
    engine: Engine,
    config: Config,
    problem: Problem,
    *,
    prices: PriceTable,
    traces_dir: Path | None,
    calls: ProblemCalls | None = None,
) -> Record:
    """Run one (config, problem) into its record; the same code in this process and in a Ray actor.

    ``calls``: counts what the run's calls met (answered, or could not reach the server) for the dead-server
    gate, read from the result's typed failures."""
    trace_path = None
    if traces_dir is not None:
        trace_path = traces_dir / _slug(config.id) / f"{_slug(problem.id)}.jsonl"
        trace_path.unlink(missing_ok=True)  # a crashed earlier attempt's partial trace
    trace = str(trace_path) if trace_path is not None else None
    price = prices.lookup(config.backend.name)
    budget = Budget(tokens=config.budget_tokens, price=price)
    started = anyio.current_time()
    try:
        verifier = problem_verifier(problem, config.check)
        result = await engine.run(
            config.strategy, problem.question, budget=budget, trace_path=trace_path, verifier=verifier
        )
        if calls is not None:
            calls.note(result)
        record = record_for(config, problem, result, prices, trace, compare_gold=verifier is None)
        return record if verifier is None else await judged(record, result, verifier, problem.question)
    except Exception as exc:  # recorded as a failure, never dropped and never counted as wrong
        return failed_record(config, problem, exc, anyio.current_time() - started, trace)


async def run_benchmark(
    datasets: Sequence[Dataset],
    specs: Sequence[str],
    backends: Sequence[Backend],
    out: str | Path,
    *,
    concurrency: int = 1,
    max_tokens: int | None = None,
    budget_tokens: int | None = None,
    traces_dir: str | Path | None = None,
    retry_failed: bool = False,
    prices: PriceTable | None = None,
    on_record: Callable[[Record], None] | None = None,
    executor: Executor | None = None,
) -> RunSummary:
    """Run the grid into ``out`` (JSONL), resuming what is there. See :class:`Runner`.

    ``executor=RayExecutor("local")`` (or a cluster's address) runs the problems on Ray actors; see
    :mod:`thinkloop.bench.executors`.
    """
    configs = make_configs(datasets, specs, backends, max_tokens=max_tokens, budget_tokens=budget_tokens)
    with ResultStore(out) as store:
        runner = Runner(
            store,
            concurrency=concurrency,
            traces_dir=Path(traces_dir) if traces_dir is not None else None,
            retry_failed=retry_failed,
            prices=prices or PriceTable.default(),
            on_record=on_record,
            executor=executor,
        )
        return await runner.run(configs)
