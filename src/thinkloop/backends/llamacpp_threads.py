"""How many CPU threads llama.cpp decodes with, and how its threads wait for each other.

llama.cpp's threads meet at a barrier after every operation of the graph (hundreds per token). The wheel
is built with OpenMP, whose threads by default spin for a long while at a barrier: on a machine other jobs
share, a spinning thread burns its time slice while the thread it waits for is descheduled. Measured on 2
busy cores (load average 12-17), a decode step of 8 sequences took 0.2-0.4 s on one thread and 1-7 s on
two; with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep) two threads took 0.2-0.5 s, about one
thread's time. But a thread that sleeps at once pays a wake-up at every barrier, and that made a second
thread a loss everywhere: at load average 2, an 8-sequence step took 95 ms on two sleeping threads against
75 on one. A short spin first (``GOMP_SPINCOUNT``, in busy-wait iterations) catches the other thread when it
is running and still sleeps when it is not: the same step took 41-45 ms on two threads with 2,000, 20,000
or 200,000 iterations (one sequence: 11 ms against 14-18 on one thread). So thinkloop sets
``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=10000`` before llama.cpp's library loads, unless the
environment already sets either (``OMP_WAIT_POLICY=ACTIVE`` restores unbounded spinning).

The count: ``n_threads`` (or ``$THINKLOOP_THREADS``) fixes it. Left unset, one answer at a time uses
:func:`default_threads`, and batched decoding measures a few steps with each of :func:`thread_candidates`
(interleaved, medians) and keeps the fastest, again every :data:`REMEASURE_S` seconds since the machine's
load changes; a step :data:`SLOW_STEP` times slower than measured drops it to one thread at once. The
thread count does not change the results (each output is computed by one thread in a fixed order): seeded
requests reproduce whichever count is chosen.
"""

from __future__ import annotations

import os
import time
from typing import Any

THREADS_ENV = "THINKLOOP_THREADS"
REMEASURE_S = 120.0
"""Seconds after which batched decoding measures the thread counts again (before its next request)."""
SLOW_STEP = 3.0
"""A decode step this many times slower than measured means the machine got busy: back to one thread, and
measure again before the next request."""


def configured_threads() -> int | None:
    """The thread count set in ``$THINKLOOP_THREADS``, or ``None`` when it is unset or empty."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"${THREADS_ENV} must be a positive thread count, got {raw!r}")
    return count


def default_threads() -> int:
    """``$THINKLOOP_THREADS`` if set, else half the logical cores (llama-cpp-python's own default: roughly
    the physical cores).

    With OpenMP's default spinning, one preempted thread stalls the rest: on a busy 2-core machine, 2 threads
    generated 4-10 tokens/s where 1 thread generated 30-46.
    """
    return configured_threads() or max(1, (os.cpu_count() or 1) // 2)


def thread_candidates() -> list[int]:
    """The counts batched decoding tries when none is set: one, the default, and up to 4 cores."""
    return sorted({1, default_threads(), min(4, os.cpu_count() or 1)})


SPIN_COUNT = "10000"
"""Busy-wait iterations at a barrier before an OpenMP thread sleeps (microseconds, not a time slice)."""


def prepare_openmp() -> None:
    """Make OpenMP's waiting threads spin briefly, then sleep, unless the environment says otherwise.

    Must run before ``llama_cpp`` is first imported: libgomp reads its settings once, when it loads.
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


class ThreadChoice:
    """The batched decoder's thread count: fixed, or the fastest measured, measured again when stale."""

    def __init__(self, fixed: int | None, *, remeasure_s: float = REMEASURE_S) -> None:
        self.fixed = fixed
        self.remeasure_s = remeasure_s
        self.timings: dict[int, float] = {}
        """Seconds per 8-sequence decode step for each count tried at the last measurement."""
        self._measured_at: float | None = None

    def apply(self, decoder: Any) -> int:
        """Set ``decoder``'s thread count (measuring first if due) and return it."""
        if self.fixed is not None:
            if decoder.n_threads != self.fixed:
                decoder.set_threads(self.fixed)
            return self.fixed
        due = (
            self._measured_at is None or time.monotonic() - self._measured_at >= self.remeasure_s
            or decoder.dropped_threads
        )
        candidates = thread_candidates()
        if due and len(candidates) > 1:
            self.timings = decoder.measure_threads(candidates)
            chosen = min(self.timings, key=self.timings.__getitem__)
            decoder.set_threads(chosen)
            # More than one thread is watched: a step SLOW_STEP times slower than measured drops it to one.
            decoder.step_limit_s = SLOW_STEP * self.timings[chosen] if chosen > 1 else None
            decoder.dropped_threads = False
            self._measured_at = time.monotonic()
        return int(decoder.n_threads)
