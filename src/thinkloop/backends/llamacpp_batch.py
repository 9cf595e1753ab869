"""Batched sampling: answers advance together, one llama.cpp decode per token step, across requests.

Sampling answers one after another pays for every matrix product over the weights once per answer; a decode
over ``k`` sequences reads the weights once for all of them, so on a CPU the step costs little more than one
sequence's. :class:`BatchDecoder` owns a second llama.cpp context on the already loaded model (the ``Llama``
object's context holds one sequence) with a *unified* KV cache, where copying a sequence only tags the
prompt's cells with another sequence id: each prompt is evaluated and stored once.

Continuous batching: every request in flight (the ``n`` answers of one request, and independent requests
from ``serve``, ``bench --concurrency`` or a strategy's concurrent branches) is a *job*; jobs join and leave
the batch between decode steps:

1. A job is admitted when a root sequence id and KV cells for its prompt are free; its prompt is decoded
   into its root (never sampled) and the last logits kept. When the context holds nothing else it is cleared
   first, so a request that runs alone reproduces whatever ran before it.
2. A sequence starting in slot ``s`` samples its first token from its job's prompt logits (the very logits a
   single request would sample from) and gets the root's cells (``llama_memory_seq_cp``: a tag, no copy).
   Once every sequence of a job has started, its root id is free for the next job.
3. Each step decodes one token for every active sequence of every job and samples each from its own sampler
   chain (penalties, top-k, typical, top-p, min-p, temperature, a seeded ``dist``: the chain and defaults
   ``Llama.create_completion`` builds), so every sequence keeps its own seed, penalty history, stop strings
   and token limit and finishes on its own.
4. A finished sequence's cells are removed and its slot goes to the next waiting sequence (oldest job
   first); sequences wait when the slots are taken (``max_parallel``) or their worst case would not fit.

Who decodes: no thread of its own. Each caller submits its job and waits on a condition; whichever caller
finds nobody decoding drives the loop for everyone until its own job is done, then hands over to a caller
still waiting (callers run in ``anyio.to_thread`` workers, so nothing outlives the requests).

Cancellation is checked between decode steps (and between prompt chunks): a cancelled job's slots, root and
cells are freed before the next step, and the other jobs go on.

Exactness: a sequence's tokens are computed in batch rows beside whatever else is in flight, in cells
placed wherever the unified cache had room; llama.cpp's sums then round differently in the last bits than
when the sequence runs alone (see ``generate``), which can flip a near-tie. A seeded request reproduces
exactly when it runs alone; beside other requests its reply is a faithful sample but may differ.
"""

from __future__ import annotations

import ctypes
import secrets
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: "pick a random seed"
_PENALTY_LAST_N = 64  # Llama(last_n_tokens_size=64): the window its repetition penalty looks at


MEASURED_ROWS = 8
"""Rows of the decode steps the thread choice times."""
LLAMA_MAX_SEQ = 256
"""llama.cpp's limit on sequence ids in one context (``LLAMA_MAX_SEQ``)."""
STEP_HISTORY = 1024
"""Decode steps whose row counts :attr:`BatchDecoder.step_rows` keeps."""


class DecodeCancelled(Exception):
    """The request was cancelled; raised between decode steps after its slots were freed."""


class DecodeError(RuntimeError):
    """llama.cpp refused a batch (``llama_decode`` returned an error code)."""


@dataclass(frozen=True)
class SamplingParams:
    """One sequence's sampling: ``Llama.create_completion``'s defaults, and its own seed, stops and limit."""

    max_tokens: int | None
    """``None``: as many as the context leaves after the prompt."""
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    seed: int | None = None
    """``None`` draws a fresh random seed; any int reproduces (taken modulo 2**32)."""
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchResult:
    """One request's answers, and how many of its prompt tokens were shared from another request's."""

    sequences: list[SequenceResult]
    cached_prompt_tokens: int


@dataclass(frozen=True)
class SequenceResult:
    text: str
    finish_reason: str
    """``"stop"`` (end of generation or a stop string) or ``"length"`` (``max_tokens`` reached)."""
    completion_tokens: int
    """Tokens sampled, an end-of-generation token excepted (as ``Llama`` counts them)."""


@dataclass(eq=False)
class _Job:
    """One request's sequences in the batch: submitted by its caller, advanced by whichever caller drives."""

    prompt: Sequence[int]
    waiting: deque[tuple[int, SamplingParams]]
    cancelled: threading.Event
    results: list[SequenceResult | None]
    root: int = -1
    """The sequence id holding the prompt while sequences still wait to start; -1 when not holding one."""
    reused: int = 0
    """Prompt tokens copied from another job's cells instead of evaluated."""
    continued: Sequence[int] = ()
    """The answer's tokens so far when the job continues one begun elsewhere (the last of ``prompt``)."""
    logits: Any = None
    admitted: bool = False
    running: int = 0
    error: BaseException | None = None
    done: bool = False


@dataclass(eq=False)
class _Active:
    job: _Job
    index: int
    params: SamplingParams
    slot: int
    sampler: Any
    limit: int
    """Tokens the answer may have in all (those it continues included)."""
    reserved: int
    """KV cells held for its worst case."""
    pos: int
    next_token: int
    row: int = 0
    tokens: int = 0
    text: bytearray = field(default_factory=bytearray)
    stops: tuple[bytes, ...] = ()


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


@cache
def _numpy() -> Any:
    """numpy (a llama-cpp-python dependency), imported when a batch first runs: ``import thinkloop`` stays light."""
    import numpy

    return numpy


def sampler_seed(seed: int | None) -> int:
    """A 32-bit seed for llama.cpp's ``dist`` sampler; ``None`` draws one (never the "random" marker)."""
    value = secrets.randbits(32) if seed is None else seed % 2**32
    return value if value != _DEFAULT_SEED else 0


class BatchDecoder:
    """The sequences of every request in flight, decoded together in a context of their own on a loaded model.

    :meth:`generate` is thread-safe: each caller's job joins the batch between steps, and one caller at a
    time drives the loop for all (see the module's docstring).

    Args:
        llama_cpp: the ``llama_cpp`` module.
        llama: the loaded ``llama_cpp.Llama``; its model weights are shared, its context settings copied
            (attention, KV types) so both paths compute alike.
        n_ctx: KV cells for the prompt (once) plus every active sequence's tokens.
        n_threads: CPU threads for the decode steps.
        max_parallel: sequences decoded together at most (slots); as many jobs may hold a prompt root.
        stop_token_ids: tokens that end a sequence besides the model's end-of-generation tokens (a chat
            template's own stop tokens).
    """

    def __init__(
        self,
        llama_cpp: Any,
        llama: Any,
        *,
        n_ctx: int,
        n_threads: int,
        max_parallel: int,
        stop_token_ids: Sequence[int] = (),
    ) -> None:
        if 2 * max_parallel + 1 > LLAMA_MAX_SEQ:
            raise ValueError(f"max_parallel must be at most {(LLAMA_MAX_SEQ - 1) // 2}, got {max_parallel}")
        self._lib = llama_cpp
        self._llama = llama  # the model must outlive this context
        self._vocab = llama._model.vocab
        self.max_parallel = max_parallel
        self.n_batch = max(512, max_parallel)
        self._stop_token_ids = frozenset(stop_token_ids)
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = self.n_batch
        # Slots 1..max_parallel decode; roots max_parallel+1..2*max_parallel hold prompts of jobs still starting.
        params.n_seq_max = 2 * max_parallel + 1
        params.kv_unified = True  # copies share the prompt's cells instead of duplicating them
        params.embeddings = False
        params.n_threads = params.n_threads_batch = n_threads
        self._ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
        if not self._ctx:
            raise DecodeError("llama.cpp could not create the batched decoding context")
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self.n_threads = n_threads
        self.step_limit_s: float | None = None
        """A step of :data:`MEASURED_ROWS` rows slower than this drops the decoder to one thread."""
        self.dropped_threads = False
        """Whether a slow step dropped the decoder to one thread since the thread choice last looked."""
        self.on_idle: Callable[[BatchDecoder], None] | None = None
        """Called by the driver, when the context holds nothing, before it admits the next jobs (the thread
        choice measures there: measuring needs the whole context)."""
        self.step_rows: deque[int] = deque(maxlen=STEP_HISTORY)
        """Rows of the most recent decode steps (how many sequences each advanced), newest last."""
        # Shared with the callers, under the condition: jobs submitted and not yet taken, who drives.
        self._cond = threading.Condition()
        self._incoming: deque[_Job] = deque()
        self._driving = False
        self._closed = False
        # The driver's alone: jobs taken (admitted or waiting for room), running sequences, free ids, cells.
        self._jobs: list[_Job] = []
        self._active: list[_Active] = []
        self._free_slots = list(range(max_parallel, 0, -1))
        self._free_roots = list(range(2 * max_parallel, max_parallel, -1))
        self._used = 0
        """KV cells held: each admitted job's prompt once, plus each running sequence's worst case."""

    def set_threads(self, n_threads: int) -> None:
        self._lib.llama_set_n_threads(self._ctx, n_threads, n_threads)
        self.n_threads = n_threads

    def busy_sequences(self) -> list[int]:
        """Sequence ids that hold KV cells (slots 1..max_parallel, roots above): empty between requests."""
        pos_max = self._lib.llama_memory_seq_pos_max
        return [seq for seq in range(2 * self.max_parallel + 1) if pos_max(self._memory, seq) >= 0]

    def pending(self) -> int:
        """Jobs in the decoder now: submitted, admitted or running (0 when idle)."""
        with self._cond:
            return len(self._incoming) + len(self._jobs)

    @property
    def idle(self) -> bool:
        """Nothing submitted, nothing held, nobody driving: every slot, root and cell is free."""
        with self._cond:
            return (
                not (self._incoming or self._jobs or self._active or self._driving)
                and self._used == 0
                and (len(self._free_slots) == len(self._free_roots) == self.max_parallel)
            )

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Free the context, once whoever drives has finished its step (callers see :class:`DecodeError`)."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            self._closed = True
            while self._driving:
                cond.wait()
            if getattr(self, "_ctx", None) is not None:
                for job in (*self._incoming, *self._jobs):
                    self._fail(job, DecodeError("the batched decoder was closed"))
                for seq in self._active:
                    if seq.sampler is not None:
                        self._lib.llama_sampler_free(seq.sampler)
                self._incoming.clear()
                self._jobs.clear()
                self._active.clear()
                self._lib.llama_batch_free(self._batch)
                self._lib.llama_free(self._ctx)
                self._ctx = None
                cond.notify_all()

    # --- one request ------------------------------------------------------------------------------------
    def generate(
        self,
        prompt: Sequence[int],
        sequences: Sequence[SamplingParams],
        cancelled: threading.Event,
    ) -> list[SequenceResult]:
        """The answers of :meth:`run`."""
        return self.run(prompt, sequences, cancelled).sequences

    def run(
        self,
        prompt: Sequence[int],
        sequences: Sequence[SamplingParams],
        cancelled: threading.Event,
        *,
        continued: Sequence[int] = (),
    ) -> BatchResult:
        """Sample every sequence's answer to ``prompt``, beside whatever else is in flight; results in the
        order of ``sequences``. Thread-safe: call it from as many worker threads as requests in flight.

        The longest prefix the prompt shares with a prompt in the context now (another request's, while
        it runs) is copied from its cells, not evaluated (``cached_prompt_tokens``); the last two tokens
        are always evaluated, so the first logits come from a batch as in a fresh evaluation.

        ``continued``: the answer so far of one sequence begun elsewhere (the one-at-a-time path hands a
        request over when others arrive); ``prompt`` ends with these tokens. The answer then goes on from
        them: its text, token count (``max_tokens`` counts them) and penalty history include them.

        Greedy sequences with the same settings have one answer, computed once and repeated: decoding it
        again in other batch rows would only add rounding noise (a row's attention sums run over cells at
        other places in the shared cache), which can flip a near-tie and make "identical" answers differ.
        Each sequence's ``max_tokens`` is cut to what the context leaves after the prompt (as ``Llama``
        does). Raises :class:`DecodeCancelled` once ``cancelled`` is set, :class:`DecodeError` if llama.cpp
        fails a batch.
        """
        if not prompt:
            raise ValueError("the prompt has no tokens")
        if continued and (len(sequences) != 1 or list(prompt[len(prompt) - len(continued) :]) != list(continued)):
            raise ValueError("a continued answer is one sequence whose tokens end the prompt")
        if len(prompt) >= self.n_ctx:
            raise ValueError(f"the prompt has {len(prompt)} tokens; the context window holds {self.n_ctx}")
        unique: dict[SamplingParams, int] = {}
        runs: list[SamplingParams] = []
        source: list[int] = []
        for params in sequences:
            if params.temperature == 0:
                key = replace(params, seed=None)
                if key not in unique:
                    unique[key] = len(runs)
                    runs.append(params)
                source.append(unique[key])
            else:
                source.append(len(runs))
                runs.append(params)
        job = _Job(
            prompt=list(prompt),
            waiting=deque(enumerate(runs)),
            cancelled=cancelled,
            results=[None] * len(runs),
            continued=list(continued),
        )
        if not runs:
            return BatchResult([], 0)
        with self._cond:
            if self._closed:
                raise DecodeError("the batched decoder was closed")
            self._incoming.append(job)
            while not job.done and self._driving:
                self._cond.wait()
            drive = not job.done
            if drive:
                self._driving = True
        if drive:
            try:
                self._drive(job)
            except BaseException as exc:
                # Whatever stopped the driver stops every job it took: none is left for nobody to collect.
                failure = exc if isinstance(exc, DecodeError) else DecodeError(f"batched decoding failed: {exc!r}")
                if self._ctx is not None:
                    self._fail_all(failure)
                if isinstance(exc, Exception):
                    raise failure from exc
                raise
            finally:
                with self._cond:
                    self._driving = False
                    self._cond.notify_all()  # a caller still waiting takes over
        if job.error is not None:
            raise job.error
        results = [r for r in job.results if r is not None]
        return BatchResult([results[i] for i in source], job.reused)

    # --- the loop, run by one caller at a time ----------------------------------------------------------
    def _drive(self, own: _Job) -> None:
        """Admit, start, step and finish everyone's sequences until ``own`` is done."""
        while True:
            with self._cond:
                if own.done or self._ctx is None:
                    if not own.done:
                        self._fail(own, DecodeError("the batched decoder was closed"))
                    return
                idle = not self._jobs and bool(self._incoming)
                self._jobs.extend(self._incoming)  # taken, not admitted: they hold no cells yet
                self._incoming.clear()
            try:
                if idle and self.on_idle is not None:
                    self.on_idle(self)  # nothing held: the thread choice may use the whole context
                    with self._cond:  # and whoever came meanwhile is admitted with them
                        self._jobs.extend(self._incoming)
                        self._incoming.clear()
                self._reap_cancelled()
                self._admit()
                self._start_waiting()
                if self._active:
                    self._advance()
            except DecodeError as exc:
                self._fail_all(exc)

    def _admit(self) -> None:
        """Evaluate the prompts of waiting jobs, oldest first, while a root and their cells are free."""
        lib = self._lib
        for job in list(self._jobs):
            if job.admitted or job.done:
                continue
            first = self._reserve(job, job.waiting[0][1])
            held = any(j.admitted for j in self._jobs)
            if not self._free_roots or (held and self._used + len(job.prompt) + first > self.n_ctx):
                return  # in order: a later small job does not overtake a waiting large one
            if not held:
                lib.llama_memory_clear(self._memory, True)  # alone, a request reproduces whatever ran before
            job.root = self._free_roots.pop()
            job.admitted = True
            self._used += len(job.prompt)
            job.reused, source = self._shared_prefix(job)
            if job.reused:
                lib.llama_memory_seq_cp(self._memory, source, job.root, 0, job.reused)
            try:
                job.logits = self._decode_prompt(job.prompt, job.root, job.cancelled, offset=job.reused)
            except DecodeCancelled as exc:
                self._finish(job, exc)
            except DecodeError as exc:
                self._finish(job, exc)

    def _reserve(self, job: _Job, params: SamplingParams) -> int:
        """The cells a sequence of ``job`` may fill: what is left of its ``max_tokens``, within the context."""
        room = self.n_ctx - len(job.prompt)
        wanted = room if params.max_tokens is None else params.max_tokens - len(job.continued)
        return max(1, min(wanted, room))

    def _token_bytes(self, token: int) -> bytes:
        size = self._lib.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return bytes(self._piece.raw[: max(0, size)])

    def _shared_prefix(self, job: _Job) -> tuple[int, int]:
        """The longest prefix of ``job``'s prompt whose cells another admitted job holds: its length and a
        sequence holding it (the job's root, or one of its running slots). At least two tokens are left to
        evaluate, so the first token's logits come from a batch of several tokens, as in a fresh evaluation."""
        best, source = 0, -1
        for other in self._jobs:
            if other is job or not other.admitted or other.done:
                continue
            holder = other.root if other.root >= 0 else next((seq.slot for seq in self._active if seq.job is other), -1)
            if holder < 0:
                continue
            shared = common_length(other.prompt, job.prompt)
            if shared > best:
                best, source = shared, holder
        best = min(best, len(job.prompt) - 2)
        return (best, source) if best > 0 else (0, -1)

    def _start_waiting(self) -> None:
        """Give free slots to waiting sequences, oldest job first, while their worst case fits."""
        lib = self._lib
        for job in list(self._jobs):
            if not job.admitted or job.done:
                continue
            while job.waiting and self._free_slots:
                index, params = job.waiting[0]
                reserved = self._reserve(job, params)
                if self._active and self._used + reserved > self.n_ctx:
                    return  # wait for a running sequence to free its cells
                job.waiting.popleft()
                seq = _Active(
                    job=job,
                    index=index,
                    params=params,
                    slot=self._free_slots.pop(),
                    sampler=self._sampler(params),
                    limit=len(job.continued) + reserved,
                    reserved=reserved,
                    pos=len(job.prompt) - 1,
                    next_token=-1,  # _consume moves it to the first
                    stops=tuple(s.encode("utf-8") for s in params.stop if s),
                )
                for token in job.continued:  # the answer so far: its text, count and penalty history
                    lib.llama_sampler_accept(seq.sampler, token)
                    seq.text += self._token_bytes(token)
                    seq.tokens += 1
                # The first token comes from the prompt's own logits, the same for every sequence.
                finished = self._consume(seq, self._sample_from(seq.sampler, job.logits))
                if finished is not None:
                    job.results[index] = finished
                    lib.llama_sampler_free(seq.sampler)
                    self._free_slots.append(seq.slot)
                else:
                    lib.llama_memory_seq_cp(self._memory, job.root, seq.slot, -1, -1)
                    self._used += reserved
                    job.running += 1
                    self._active.append(seq)
            if not job.waiting:
                self._release_root(job)
                if not job.running:
                    self._finish(job)

    def _advance(self) -> None:
        """One decode step for every running sequence; finished ones leave, finished jobs are handed back."""
        lib = self._lib
        self._step(self._active)
        for seq in list(self._active):
            token = lib.llama_sampler_sample(seq.sampler, self._ctx, seq.row)
            finished = self._consume(seq, token)
            if finished is not None:
                seq.job.results[seq.index] = finished
                self._stop_sequence(seq)
                job = seq.job
                if not job.running and not job.waiting:
                    self._finish(job)

    def _stop_sequence(self, seq: _Active) -> None:
        lib = self._lib
        self._active.remove(seq)
        lib.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
        if seq.sampler is not None:
            lib.llama_sampler_free(seq.sampler)
            seq.sampler = None
        self._free_slots.append(seq.slot)
        self._used -= seq.reserved
        seq.job.running -= 1

    def _release_root(self, job: _Job) -> None:
        """The prompt's cells stay while a copy tags them; the root id is free for another job."""
        if job.root >= 0:
            self._lib.llama_memory_seq_rm(self._memory, job.root, -1, -1)
            self._free_roots.append(job.root)
            job.root = -1

    def _finish(self, job: _Job, error: BaseException | None = None) -> None:
        """Free whatever ``job`` still holds and hand it back to its caller."""
        for seq in [s for s in self._active if s.job is job]:
            self._stop_sequence(seq)
        self._release_root(job)
        if job.admitted:
            self._used -= len(job.prompt)
            job.admitted = False
        job.waiting.clear()
        job.logits = None
        if job in self._jobs:
            self._jobs.remove(job)
        with self._cond:
            job.error = error
            job.done = True
            self._cond.notify_all()

    def _fail(self, job: _Job, error: BaseException) -> None:
        """Hand back a job the driver never took (under the condition)."""
        job.error, job.done = error, True

    def _reap_cancelled(self) -> None:
        """Cancelled jobs leave before the next step: their slots, root and cells are free for the others."""
        for job in list(self._jobs):
            if job.cancelled.is_set():
                self._finish(job, DecodeCancelled())

    def _fail_all(self, error: DecodeError) -> None:
        """llama.cpp refused a batch: every job taken fails with it and the context starts empty."""
        for job in list(self._jobs):
            self._finish(job, error)
        self._lib.llama_memory_clear(self._memory, True)

    def _decode_prompt(self, tokens: Sequence[int], seq: int, cancelled: threading.Event, offset: int = 0) -> Any:
        """Decode the prompt from ``offset`` on into sequence ``seq`` in chunks; a copy of its last logits."""
        lib = self._lib
        batch = self._batch
        for start in range(offset, len(tokens), self.n_batch):
            if cancelled.is_set():
                raise DecodeCancelled
            chunk = tokens[start : start + self.n_batch]
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = 0
            batch.logits[len(chunk) - 1] = int(start + len(chunk) == len(tokens))
            batch.n_tokens = len(chunk)
            self._decode()
        n_vocab = lib.llama_vocab_n_tokens(self._vocab)
        return _numpy().ctypeslib.as_array(lib.llama_get_logits_ith(self._ctx, -1), shape=(n_vocab,)).copy()

    def _sample_from(self, sampler: Any, logits: Any) -> int:
        """What ``llama_sampler_sample`` does, on saved logits: apply the chain, accept its choice."""
        lib = self._lib
        np = _numpy()
        token_data = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        candidates = np.empty(len(logits), dtype=token_data)
        candidates["id"] = np.arange(len(logits), dtype=np.intc)
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = lib.llama_token_data_array(
            data=candidates.ctypes.data_as(lib.llama_token_data_p),
            size=len(candidates),
            selected=-1,
            sorted=False,
        )
        lib.llama_sampler_apply(sampler, ctypes.byref(array))
        token = int(array.data[array.selected].id)
        lib.llama_sampler_accept(sampler, token)
        return token

    def _step(self, active: list[_Active]) -> None:
        """One token for every active sequence, each in its own batch row with its logits kept."""
        batch = self._batch
        for row, seq in enumerate(active):
            batch.token[row] = seq.next_token
            batch.pos[row] = seq.pos
            batch.n_seq_id[row] = 1
            batch.seq_id[row][0] = seq.slot
            batch.logits[row] = 1
            seq.row = row
        batch.n_tokens = len(active)
        started = time.perf_counter()
        self._decode()
        self.step_rows.append(len(active))
        self._watch(time.perf_counter() - started, len(active))

    def _watch(self, seconds: float, rows: int) -> None:
        """Drop to one thread at once when a step takes far longer than the measured ones did.

        Two threads beat one only while both get a core; when other work takes one, each step waits at every
        barrier for a thread that is not running and becomes several times slower than on one thread
        (measured: 255-582 ms against 25-138). The thread choice measures again before the next request.
        """
        limit = self.step_limit_s
        if limit is None or self.n_threads == 1 or seconds <= limit * max(1.0, rows / MEASURED_ROWS):
            return
        self.set_threads(1)
        self.dropped_threads = True

    def _decode(self) -> None:
        code = self._lib.llama_decode(self._ctx, self._batch)
        if code != 0:
            raise DecodeError(f"llama_decode failed with code {code} for a batch of {self._batch.n_tokens} tokens")

    def _consume(self, seq: _Active, token: int) -> SequenceResult | None:
        """Add a sampled token to ``seq``; a result when it ends the sequence."""
        lib = self._lib
        if lib.llama_vocab_is_eog(self._vocab, token) or token in self._stop_token_ids:
            return self._result(seq, "stop")  # the end token is not part of the answer, nor counted
        seq.tokens += 1
        size = lib.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        seq.text += self._piece.raw[: max(0, size)]
        if seq.stops:
            # Only the new piece's bytes (plus a stop's length of context) can complete a stop string.
            window = max(len(s) for s in seq.stops) + max(0, size)
            tail_start = max(0, len(seq.text) - window)
            hits = [i for s in seq.stops if (i := seq.text.find(s, tail_start)) >= 0]
            if hits:
                del seq.text[min(hits) :]
                return self._result(seq, "stop")
        if seq.tokens >= seq.limit:
            return self._result(seq, "length")
        seq.next_token = token
        seq.pos += 1
        return None

    @staticmethod
    def _result(seq: _Active, reason: str) -> SequenceResult:
        return SequenceResult(
            text=bytes(seq.text).decode("utf-8", errors="ignore"),
            finish_reason=reason,
            completion_tokens=seq.tokens,
        )

    def _sampler(self, params: SamplingParams) -> Any:
        """The chain ``Llama._init_sampler`` builds for these settings (no mirostat, grammar or bias)."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        n_vocab = lib.llama_vocab_n_tokens(self._vocab)
        links = [lib.llama_sampler_init_penalties(n_vocab, _PENALTY_LAST_N, params.repeat_penalty, 0.0, 0.0)]
        if params.temperature == 0:
            links.append(lib.llama_sampler_init_greedy())
        else:
            links += [
                lib.llama_sampler_init_top_k(params.top_k),
                lib.llama_sampler_init_typical(params.typical_p, 1),
                lib.llama_sampler_init_top_p(params.top_p, 1),
                lib.llama_sampler_init_min_p(params.min_p, 1),
                lib.llama_sampler_init_temp(params.temperature),
                lib.llama_sampler_init_dist(sampler_seed(params.seed)),
            ]
        for link in links:
            lib.llama_sampler_chain_add(chain, link)
        return chain

    # --- thread count ---------------------------------------------------------------------------------
    def measure_threads(
        self, candidates: Sequence[int], *, rows: int = MEASURED_ROWS, rounds: int = 3
    ) -> dict[int, float]:
        """Seconds per decode step of ``rows`` sequences for each thread count; leaves the cache empty.

        Candidates are interleaved so a burst of load elsewhere hits them alike; the first round warms the
        thread pools and is not counted. A count 3x slower than the fastest in a round is dropped at once
        (on a busy machine an extra thread can make a step ~20x slower: one such step is enough to know).
        """
        lib = self._lib
        rows = max(1, min(rows, self.max_parallel))
        batch = self._batch
        timings: dict[int, list[float]] = {count: [] for count in candidates}
        racing = list(candidates)
        token = max(0, lib.llama_vocab_bos(self._vocab))
        position = 0  # llama.cpp wants each sequence's positions consecutive across decodes
        lib.llama_memory_clear(self._memory, True)
        try:
            for _ in range(rounds + 1):
                for count in racing:
                    lib.llama_set_n_threads(self._ctx, count, count)
                    for row in range(rows):
                        batch.token[row] = token
                        batch.pos[row] = position
                        batch.n_seq_id[row] = 1
                        batch.seq_id[row][0] = row + 1
                        batch.logits[row] = 1
                    batch.n_tokens = rows
                    started = time.perf_counter()
                    self._decode()
                    position += 1
                    timings[count].append(time.perf_counter() - started)
                fastest = min(timings[count][-1] for count in racing)
                racing = [count for count in racing if timings[count][-1] <= 3 * fastest]
        finally:
            lib.llama_memory_clear(self._memory, True)
            lib.llama_set_n_threads(self._ctx, self.n_threads, self.n_threads)
        return {count: statistics.median(times[1:] or times) for count, times in timings.items()}
