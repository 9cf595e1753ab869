"""Sandbox overhead: milliseconds per run of a trivial program, the old sandbox against the new, same process.

Three ways to run ``print(6 * 7)`` through the program verifier's runner, interleaved round by round so that
load on the machine hits them alike:

- ``plain``: a child interpreter with the bootstrap (rlimits and audit hook), no isolation
  (``allow_unguarded`` where bubblewrap is missing);
- ``old``: what the program sandbox was before issue 17: the same child under ``unshare -n`` (``-rn`` when not
  root), a network namespace only;
- ``new``: the bubblewrap sandbox (user, PID, mount, IPC, network, UTS namespaces, read-only view, seccomp).

It prints the median per way, and the new sandbox's cost over the old one (ms added and the ratio); then the
same for ``--concurrent`` runs started together (default 16), plain against new, per batch. The sandbox is
whatever the imported thinkloop provides: run the script with ``PYTHONPATH=<a checkout of main>/src`` to
measure main's sandbox on the same machine (the script uses only ``ProgramVerifier.run``).

Usage::

    python benchmarks/sandbox_overhead.py [--runs 30] [--concurrent 16] [--batches 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import anyio

from thinkloop.verifiers import ProgramVerifier, sandbox_unavailable_reason
from thinkloop.verifiers.sandbox import bootstrap_source, run_bounded

PROGRAM = "print(6 * 7)\n"


async def plain(verifier: ProgramVerifier) -> None:
    run = await verifier.run(PROGRAM)
    assert run.ok and not run.guarded, run


async def new(verifier: ProgramVerifier) -> None:
    run = await verifier.run(PROGRAM)
    assert run.ok and run.guarded, run


async def old(verifier: ProgramVerifier) -> None:
    """The old sandbox's command: ``unshare -n`` in front of the bootstrapped interpreter."""
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    with tempfile.TemporaryDirectory(prefix="thinkloop-sandbox-") as scratch:
        config = verifier._config(writable=[scratch], guarded=False)
        command = [*prefix, verifier.python, "-I", "-B", "-c", bootstrap_source(), config]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8"}
        done = await run_bounded(
            command, stdin=PROGRAM.encode(), cwd=scratch, env=env, time_limit=30, max_output_bytes=2**20
        )
    assert done.returncode == 0 and done.stdout == b"42\n", done


async def batch(way: object, verifier: ProgramVerifier, size: int) -> None:
    async with anyio.create_task_group() as group:
        for _ in range(size):
            group.start_soon(way, verifier)  # type: ignore[arg-type]


async def main(runs: int, concurrent: int, batches: int) -> None:
    reason = await sandbox_unavailable_reason()
    if reason is not None:
        sys.exit(f"sandbox_overhead: {reason}")
    guarded = ProgramVerifier()
    unguarded = ProgramVerifier(bwrap="/nonexistent/bwrap", allow_unguarded=True)
    ways = {"plain": (plain, unguarded), "old": (old, guarded), "new": (new, guarded)}
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for way, verifier in ways.values():  # warm up: imports, probes, page cache
        await way(verifier)
    for _ in range(runs):
        for name, (way, verifier) in ways.items():
            started = time.perf_counter()
            await way(verifier)
            timings[name].append((time.perf_counter() - started) * 1000)
    median = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in median.items():
        print(f"{name:6s} {value:7.1f} ms per run (median of {runs})")
    print(
        f"new sandbox over old: +{median['new'] - median['old']:.1f} ms per run, "
        f"ratio {median['new'] / median['old']:.2f}x; over plain: ratio {median['new'] / median['plain']:.2f}x"
    )
    if concurrent < 1 or batches < 1:
        return
    together: dict[str, list[float]] = {"plain": [], "new": []}
    for _ in range(batches):
        for name in together:
            way, verifier = ways[name]
            started = time.perf_counter()
            await batch(way, verifier, concurrent)
            together[name].append((time.perf_counter() - started) * 1000)
    per_batch = {name: statistics.median(values) for name, values in together.items()}
    for name, value in per_batch.items():
        print(
            f"{name:6s} {value:7.1f} ms for {concurrent} concurrent runs "
            f"({value / concurrent:.1f} ms per run, median of {batches} batches)"
        )
    print(f"new sandbox over plain, {concurrent} concurrent: ratio {per_batch['new'] / per_batch['plain']:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--batches", type=int, default=5)
    arguments = parser.parse_args()
    anyio.run(main, arguments.runs, arguments.concurrent, arguments.batches)
