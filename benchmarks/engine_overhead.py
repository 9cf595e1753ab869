"""Engine overhead: what thinkloop adds to each model call, in microseconds.

Runs N scripted zero-latency calls through the engine (one run whose strategy calls ``ctx.call`` N times in a
row, under a token budget, with trace recording on: a JSONL sink to a temporary file and the in-memory
graph), and the same N calls straight to the same kind of ScriptedBackend in the same process. The
difference per call is the engine's overhead: reserving and settling the budget, the capacity limiter, two
graph nodes and two trace events per call (running, then done), extracting the answer. Target: 40 µs per
call (on CPU time, the steadier clock on a shared machine). The overhead is also printed as a multiple of
the direct call measured in the same run, which holds still when the shared machine as a whole slows down.

A second line does the same with the calls in concurrent batches (``--concurrency``), as fan-out
strategies do. A third splits the calls over runs of a typical size (``--run-size``, 100 calls) appended
to one trace file, each let go when it ends: one run of 10,000 calls keeps 10,000 nodes with their
completions alive, and the garbage collector's walks over them cost about 10 µs a call. The last line
counts what a run keeps per call for the collector to walk (deterministic, unlike the clocks).

Usage::

    python benchmarks/engine_overhead.py [--calls 10000] [--repeats 3] [--concurrency 64] [--run-size 100]
        [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import pstats
import tempfile
import time
from pathlib import Path

import anyio

from thinkloop import Budget, ChatRequest, Engine, Outcome, RunContext, ScriptedBackend, Strategy

REQUEST = ChatRequest.of("What is 6 * 7? Think step by step.", system="You are careful.", max_tokens=64)
REPLY = "6 * 7 = 42. Answer: 42"


class Calls(Strategy):
    """``calls`` model calls, ``concurrency`` at a time, each under the last finished one."""

    name = "calls"

    def __init__(self, calls: int, concurrency: int = 1) -> None:
        super().__init__()
        self.calls = calls
        self.concurrency = concurrency

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        last = parent
        if self.concurrency == 1:
            for _ in range(self.calls):
                node, _ = await ctx.call(REQUEST, parents=[last])
                last = node.id
            return Outcome(candidate=None, stop_reason="completed")

        async def one() -> None:
            await ctx.call(REQUEST, parents=[parent])

        done = 0
        while done < self.calls:
            batch = min(self.concurrency, self.calls - done)
            async with anyio.create_task_group() as group:
                for _ in range(batch):
                    group.start_soon(one)
            done += batch
        return Outcome(candidate=None, stop_reason="completed")


class Clock:
    """Wall-clock and this process's CPU time. On a shared machine the CPU time is the steadier figure:
    other processes' load stretches the wall clock, not the work done."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


async def direct(calls: int, concurrency: int) -> tuple[float, float]:
    backend = ScriptedBackend(lambda request: REPLY)
    clock = Clock()
    if concurrency == 1:
        for _ in range(calls):
            await backend.complete(REQUEST)
    else:
        done = 0
        while done < calls:
            batch = min(concurrency, calls - done)
            async with anyio.create_task_group() as group:
                for _ in range(batch):
                    group.start_soon(backend.complete, REQUEST)
            done += batch
    return clock.lap()


async def through_engine(calls: int, concurrency: int, directory: Path, runs: int = 1) -> tuple[float, float]:
    """``calls`` calls in all, split over ``runs`` runs, each with its own graph, appended to one trace file
    (creating a file costs about a millisecond on this machine's file system, which is not the engine's)."""
    backend = ScriptedBackend(lambda request: REPLY)
    engine = Engine(backend)
    per_run = calls // runs
    trace_path = directory / f"trace-{time.monotonic_ns()}.jsonl"
    sizes = []  # what each run did, not the run: a finished run's graph is let go, as an application would
    clock = Clock()
    for _ in range(runs):
        result = await engine.run(Calls(per_run, concurrency), "q", budget=Budget(tokens=10**12), trace_path=trace_path)
        sizes.append((result.usage.calls, len(result.graph)))
    elapsed = clock.lap()
    assert sizes == [(per_run, per_run + 1)] * runs, sizes
    trace_path.unlink()
    return elapsed


async def kept_per_call(calls: int = 1000) -> float:
    """Objects the garbage collector tracks that a finished run keeps per call (its graph's nodes, their
    completions, choices and usage): every full collection walks all of them, so a long run's collections
    cost more with each one (a run of 10,000 calls kept 12 per call when nodes and completions were pydantic
    models, each with a ``__dict__`` and a set of the fields set, and 6 as slotted dataclasses)."""
    engine = Engine(ScriptedBackend(lambda request: REPLY))
    await engine.run(Calls(10), "q", budget=Budget(tokens=10**12))  # first-use caches, not the run's
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        before = len(gc.get_objects())
        result = await engine.run(Calls(calls), "q", budget=Budget(tokens=10**12))
        kept = len(gc.get_objects()) - before
    finally:
        if enabled:
            gc.enable()
    assert result.usage.calls == calls
    return kept / calls


async def measure(calls: int, repeats: int, concurrency: int, runs: int = 1) -> dict[str, tuple[float, float]]:
    """µs per call, (wall, cpu), best of ``repeats`` for each side, interleaved so both see the same load."""
    best = {"direct": (math.inf, math.inf), "engine": (math.inf, math.inf)}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(repeats):
            for side, elapsed in (
                ("direct", await direct(calls, concurrency)),
                ("engine", await through_engine(calls, concurrency, Path(directory), runs)),
            ):
                best[side] = (min(best[side][0], elapsed[0]), min(best[side][1], elapsed[1]))
    return {side: (wall / calls * 1e6, cpu / calls * 1e6) for side, (wall, cpu) in best.items()}


def report(label: str, figures: dict[str, tuple[float, float]], target: float) -> bool:
    """Print one line per clock; the verdict is on CPU time."""
    within = True
    for index, clock in ((1, "cpu"), (0, "wall")):
        direct_us, engine_us = figures["direct"][index], figures["engine"][index]
        overhead = engine_us - direct_us
        verdict = ""
        if clock == "cpu":
            within = overhead < target
            verdict = f"  ({'within' if within else 'OVER'} the {target:.0f} µs target)"
        print(
            f"{label:<14} {clock:<4}  backend direct {direct_us:6.1f} µs/call  through engine {engine_us:6.1f} "
            f"µs/call  engine overhead {overhead:6.1f} µs/call = {overhead / direct_us:4.1f}x the direct call{verdict}"
        )
    return within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="batch size for the concurrent line")
    parser.add_argument("--target-us", type=float, default=40.0)
    parser.add_argument(
        "--run-size",
        type=int,
        default=100,
        help="calls per run for the third line (many runs of a typical size, each with its graph)",
    )
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--profile", action="store_true", help="cProfile one sequential engine run")
    args = parser.parse_args()

    if args.profile:
        with tempfile.TemporaryDirectory() as directory:
            profiler = cProfile.Profile()
            profiler.enable()
            anyio.run(through_engine, args.calls, 1, Path(directory), backend=args.backend)
            profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return

    print(
        f"{args.calls} scripted zero-latency calls, best of {args.repeats}, anyio on {args.backend}; "
        "trace on (JSONL file + in-memory graph), token budget on"
    )
    sequential = anyio.run(measure, args.calls, args.repeats, 1, backend=args.backend)
    report("sequential", sequential, args.target_us)
    concurrent = anyio.run(measure, args.calls, args.repeats, args.concurrency, backend=args.backend)
    report(f"{args.concurrency} concurrent", concurrent, args.target_us)
    runs = args.calls // args.run_size
    many = anyio.run(measure, runs * args.run_size, args.repeats, 1, runs, backend=args.backend)
    report(f"{runs} runs x {args.run_size}", many, args.target_us)
    kept = anyio.run(kept_per_call, backend=args.backend)
    print(f"kept per call  {kept:.1f} objects tracked by the garbage collector (nodes, completions, choices, usage)")


if __name__ == "__main__":
    main()
