"""Bench grids over Ray: one process against the Ray executor with 1 and 2 actors, on one mock server.

In one run and against the same mock OpenAI-compatible server (its own process), for each latency it runs the
same self-consistency grid (``sc:n=8``, one request with ``n=8`` per item, the way vLLM serves it) three ways,
each into a fresh results file through the bench ``Runner``:

  local    one process: one engine, ``--concurrency`` items in flight
  ray-1    ``RayExecutor`` with 1 actor, ``--concurrency`` items in flight on it
  ray-2    ``RayExecutor`` with 2 actors, ``--concurrency`` items in flight on each

Ray is started once (2 CPUs, loopback) before the timed runs; each Ray run still starts its actors, shown
apart as ``startup_s`` and left out of ``items_per_s`` (it is paid once per run, whatever its size). It prints
a table (wall seconds, items per second, the driver's CPU ms per item: for ``local`` that is all the work,
for Ray only the driver's: scheduling, receiving and writing records) and, as its last line, one JSON object
with the ratios against ``local`` at the same latency. Every run must record every item exactly once and the
mock must have answered exactly one request per item; the script fails otherwise.

The store fsyncs every record by default (what ``thinkloop bench run`` does); on a busy disk that fsync, not
the CPU, sets the pace of every mode, since the one writer waits for it. ``--no-fsync`` shows the CPU-bound
picture.

Run: ``python benchmarks/ray_scale.py`` (10,000 items; ``--items 2000`` on a busy machine, ``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from thinkloop.backends.openai import OpenAIBackend
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.executors import RayExecutor, start_local_ray
from thinkloop.bench.runner import Runner, make_configs
from thinkloop.bench.store import ResultStore, read_records
from thinkloop.testing import MockConfig, MockServerProcess, right_answer

MODES = ("local", "ray-1", "ray-2")
STRATEGY = "sc:n=8"


@dataclass
class Measurement:
    mode: str
    latency: float
    items: int
    wall_s: float
    startup_s: float
    driver_cpu_s: float
    requests: int
    correct: int

    @property
    def items_per_s(self) -> float:
        return self.items / max(1e-9, self.wall_s - self.startup_s)

    @property
    def driver_cpu_ms_per_item(self) -> float:
        return 1000 * self.driver_cpu_s / self.items


def make_dataset(count: int) -> Dataset:
    problems = []
    for i in range(count):
        question = f"What is {100 + i} + {7 * i + 3}?"
        problems.append(Problem(id=f"q{i}", question=question, answer=str(right_answer(question)), line=i + 1))
    return Dataset(name="sums", path=Path("<sums>"), problems=tuple(problems))


def measure(
    mode: str,
    latency: float,
    dataset: Dataset,
    mock: MockServerProcess,
    concurrency: int,
    workdir: Path,
    *,
    fsync: bool,
) -> Measurement:
    out = workdir / f"{mode}-{latency}.jsonl"
    executor = None if mode == "local" else RayExecutor(actors=int(mode.split("-")[1]))

    async def go() -> Any:
        backend = OpenAIBackend("mock", base_url=mock.base_url, honours_n=True, max_retries=0)
        try:
            with ResultStore(out, fsync=fsync) as store:
                runner = Runner(store, concurrency=concurrency, executor=executor)
                return await runner.run(make_configs([dataset], [STRATEGY], [backend]))
        finally:
            await backend.aclose()

    mock.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    summary = anyio.run(go)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    keys = Counter(r.key for r in read_records(out))
    requests = mock.stats()["requests"]
    if len(keys) != len(dataset) or set(keys.values()) != {1} or requests != len(dataset) or summary.failed:
        sys.exit(
            f"{mode} at {latency}s: {len(keys)} distinct records of {len(dataset)}, "
            f"{requests} requests, {summary.failed} failed"
        )
    startup = executor.startup_s if executor is not None else 0.0
    return Measurement(mode, latency, len(dataset), wall, startup, cpu, requests, summary.correct)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="items in flight per process or actor")
    parser.add_argument("--latencies", default="0,0.2", help="seconds per request, comma separated")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--no-fsync", action="store_true", help="append records without fsync (the default store fsyncs each record)"
    )
    parser.add_argument("--quick", action="store_true", help="300 items: a smoke run")
    args = parser.parse_args(argv)
    items = 300 if args.quick else args.items
    latencies = [float(x) for x in args.latencies.split(",")]
    modes = args.modes.split(",")
    dataset = make_dataset(items)
    ray = start_local_ray(num_cpus=2) if any(m != "local" for m in modes) else None
    results: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for latency in latencies:
                with MockServerProcess(MockConfig(latency=latency)) as mock:
                    for mode in modes:
                        results.append(
                            measure(mode, latency, dataset, mock, args.concurrency, Path(tmp), fsync=not args.no_fsync)
                        )
                        m = results[-1]
                        print(
                            f"{mode} at {latency}s: {m.items_per_s:.1f} items/s, "
                            f"{m.driver_cpu_ms_per_item:.2f} driver CPU ms/item",
                            file=sys.stderr,
                        )
    finally:
        if ray is not None:
            ray.shutdown()

    fsync = "no fsync" if args.no_fsync else "fsync per record"
    table = Table(title=f"{items} items of {STRATEGY}, concurrency {args.concurrency} per process or actor, {fsync}")
    for column in ("mode", "latency", "wall s", "startup s", "items/s", "driver CPU ms/item", "requests", "accuracy"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for m in results:
        table.add_row(
            m.mode,
            f"{m.latency:g}",
            f"{m.wall_s:.1f}",
            f"{m.startup_s:.1f}",
            f"{m.items_per_s:.1f}",
            f"{m.driver_cpu_ms_per_item:.3f}",
            str(m.requests),
            f"{m.correct / m.items:.3f}",
        )
    Console(width=140).print(table)

    ratios: dict[str, Any] = {
        "items": items,
        "concurrency": args.concurrency,
        "strategy": STRATEGY,
        "fsync": not args.no_fsync,
    }
    for latency in latencies:
        by_mode = {m.mode: m for m in results if m.latency == latency}
        base = by_mode.get("local")
        key = f"{int(latency * 1000)}ms"
        ratios[key] = {
            mode: {
                "items_per_s": round(m.items_per_s, 2),
                "driver_cpu_ms_per_item": round(m.driver_cpu_ms_per_item, 4),
                "startup_s": round(m.startup_s, 2),
                **(
                    {}
                    if base is None or mode == "local"
                    else {
                        "items_per_s_vs_local": round(m.items_per_s / base.items_per_s, 3),
                        "driver_cpu_per_item_vs_local": round(
                            m.driver_cpu_ms_per_item / base.driver_cpu_ms_per_item, 3
                        ),
                    }
                ),
            }
            for mode, m in by_mode.items()
        }
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
