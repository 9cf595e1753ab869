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

The count: ``n_threads`` (or ``$THINKLOOP_THREADS``) fixes it. Left unset, batched decoding measures a few
steps with each of :func:`thread_candidates` (interleaved, medians) and keeps the fastest, again every
:data:`REMEASURE_S` seconds since the machine's load changes; a step :data:`SLOW_STEP` times slower than
measured drops it to one thread at once. One answer at a time (the model's own context) is measured and
watched the same way (:class:`OneSequence`: one-token decode steps, the only ones whose thread count it
sets; prompts keep :func:`default_threads`): two threads measured 74 tokens/s against 52 on one when both
cores were free, and lose several-fold when another job takes a core. The
thread count does not change the results (each output is computed by one thread in a fixed order): seeded
requests reproduce whichever count is chosen.
"""

from __future__ import annotations

import os
import statistics
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
            self._measured_at is None
            or time.monotonic() - self._measured_at >= self.remeasure_s
            or decoder.dropped_threads
        )
        candidates = thread_candidates()
        if due and len(candidates) > 1:
            timings = decoder.measure_threads(candidates)
            if not timings:
                return int(decoder.n_threads)  # no room to measure now: keep the count, try next time
            self.timings = timings
            chosen = min(self.timings, key=self.timings.__getitem__)
            decoder.set_threads(chosen)
            # More than one thread is watched: a step SLOW_STEP times slower than measured drops it to one.
            decoder.step_limit_s = SLOW_STEP * self.timings[chosen] if chosen > 1 else None
            decoder.dropped_threads = False
            self._measured_at = time.monotonic()
        return int(decoder.n_threads)


class OneSequence:
    """The thread count of one answer decoded at a time on the ``Llama`` object's own context, measured and
    watched like the batched decoder's (:class:`ThreadChoice` drives both).

    Measuring decodes one token per step after the tokens the context holds and removes those cells again,
    so the prompt the prefix cache keeps live there stays exact. Only one-token steps take the chosen count
    (``llama_set_n_threads``' first argument); prompt batches keep theirs.
    """

    def __init__(self, llama_cpp: Any, llama: Any) -> None:
        self._lib = llama_cpp
        self._llama = llama
        self.n_threads = int(llama.context_params.n_threads)
        self.step_limit_s: float | None = None
        """A one-token step slower than this drops generation to one thread."""
        self.dropped_threads = False

    def set_threads(self, n_threads: int) -> None:
        params = self._llama.context_params
        self._lib.llama_set_n_threads(self._llama._ctx.ctx, n_threads, params.n_threads_batch)
        params.n_threads = n_threads
        self.n_threads = n_threads

    def watch(self, seconds: float) -> None:
        """Drop to one thread at once when a one-token step takes far longer than the measured ones did."""
        limit = self.step_limit_s
        if limit is None or self.n_threads == 1 or seconds <= limit:
            return
        self.set_threads(1)
        self.dropped_threads = True

    def measure_threads(self, candidates: list[int], *, rounds: int = 3) -> dict[int, float]:
        """Seconds per one-token decode step for each count (interleaved, the first round not counted, a
        count 3x slower than the fastest dropped at once); empty when the context has no room to measure."""
        lib = self._lib
        llama = self._llama
        ctx = llama._ctx.ctx
        start = int(llama.n_tokens)
        if start + len(candidates) * (rounds + 1) >= llama.n_ctx():
            return {}
        memory = lib.llama_get_memory(ctx)
        batch = lib.llama_batch_init(1, 0, 1)
        token = max(0, llama.token_bos())
        timings: dict[int, list[float]] = {count: [] for count in candidates}
        racing = list(candidates)
        position = start
        try:
            for _ in range(rounds + 1):
                for count in racing:
                    lib.llama_set_n_threads(ctx, count, llama.context_params.n_threads_batch)
                    batch.token[0], batch.pos[0], batch.n_seq_id[0] = token, position, 1
                    batch.seq_id[0][0], batch.logits[0], batch.n_tokens = 0, 1, 1
                    started = time.perf_counter()
                    code = lib.llama_decode(ctx, batch)
                    timings[count].append(time.perf_counter() - started)
                    if code != 0:
                        return {}
                    position += 1
                fastest = min(timings[count][-1] for count in racing)
                racing = [count for count in racing if timings[count][-1] <= 3 * fastest]
        finally:
            lib.llama_memory_seq_rm(memory, -1, start, -1)  # the context holds what it held before
            lib.llama_batch_free(batch)
            lib.llama_set_n_threads(ctx, self.n_threads, llama.context_params.n_threads_batch)
        return {count: statistics.median(times[1:] or times) for count, times in timings.items()}
