"""Batched sampling: the ``n`` answers to one prompt advance together, one llama.cpp decode per token step.

Sampling ``n`` answers one after another pays ``n`` times for every matrix product over the weights; a
decode over ``k`` sequences reads the weights once for all of them, so on a CPU the step costs little more
than one sequence's. :class:`BatchDecoder` owns a second llama.cpp context on the already loaded model
(the ``Llama`` object's context holds one sequence) with a *unified* KV cache, where copying a sequence
only tags the prompt's cells with another sequence id: the prompt is evaluated and stored once.

One request runs like this:

1. The cache is cleared (so a seeded request reproduces whatever ran before it) and the prompt is decoded
   into sequence 0, the root, which is never sampled; its last logits are kept.
2. A sequence starting in slot ``s`` samples its first token from those logits (the very logits a single
   request would sample from) and gets the root's cells (``llama_memory_seq_cp``: no copy, a tag).
3. Each step decodes one token for every active sequence and samples each from its own sampler chain
   (penalties, top-k, typical, top-p, min-p, temperature, a seeded ``dist``: the chain and defaults
   ``Llama.create_completion`` builds), so every sequence keeps its own seed, penalty history, stop
   strings and token limit and finishes on its own.
4. A finished sequence's cells are removed and its slot goes to the next waiting sequence; sequences wait
   when the slots are taken (``max_parallel``) or their worst case would not fit the context.

Cancellation is checked between decode steps (and between prompt chunks), so a cancelled request frees
its slots within one step.
"""

from __future__ import annotations

import ctypes
import secrets
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: "pick a random seed"
_PENALTY_LAST_N = 64  # Llama(last_n_tokens_size=64): the window its repetition penalty looks at


MEASURED_ROWS = 8
"""Rows of the decode steps the thread choice times."""


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
class SequenceResult:
    text: str
    finish_reason: str
    """``"stop"`` (end of generation or a stop string) or ``"length"`` (``max_tokens`` reached)."""
    completion_tokens: int
    """Tokens sampled, an end-of-generation token excepted (as ``Llama`` counts them)."""


@dataclass
class _Active:
    index: int
    params: SamplingParams
    slot: int
    sampler: Any
    limit: int
    pos: int
    next_token: int
    row: int = 0
    tokens: int = 0
    text: bytearray = field(default_factory=bytearray)
    stops: tuple[bytes, ...] = ()


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
    """Sequences of one prompt decoded together in a context of their own on a loaded model.

    Not thread-safe: the owner serialises :meth:`generate` calls (``LlamaCppBackend`` holds its lock).

    Args:
        llama_cpp: the ``llama_cpp`` module.
        llama: the loaded ``llama_cpp.Llama``; its model weights are shared, its context settings copied
            (attention, KV types) so both paths compute alike.
        n_ctx: KV cells for the prompt (once) plus every active sequence's tokens.
        n_threads: CPU threads for the decode steps.
        max_parallel: sequences decoded together at most (slots).
        stop_token_ids: tokens that end a sequence besides the model's end-of-generation tokens (a chat
            template's own stop tokens).
    """

    def __init__(
        self, llama_cpp: Any, llama: Any, *, n_ctx: int, n_threads: int, max_parallel: int,
        stop_token_ids: Sequence[int] = (),
    ) -> None:
        self._lib = llama_cpp
        self._llama = llama  # the model must outlive this context
        self._vocab = llama._model.vocab
        self.max_parallel = max_parallel
        self.n_batch = max(512, max_parallel)
        self._stop_token_ids = frozenset(stop_token_ids)
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = max_parallel + 1  # the root holds the prompt
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

    def set_threads(self, n_threads: int) -> None:
        self._lib.llama_set_n_threads(self._ctx, n_threads, n_threads)
        self.n_threads = n_threads

    def busy_sequences(self) -> list[int]:
        """Sequence ids that hold KV cells (the root is 0, slots 1..max_parallel): empty between requests."""
        pos_max = self._lib.llama_memory_seq_pos_max
        return [seq for seq in range(self.max_parallel + 1) if pos_max(self._memory, seq) >= 0]

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None

    # --- one request ------------------------------------------------------------------------------------
    def generate(
        self, prompt: Sequence[int], sequences: Sequence[SamplingParams], cancelled: threading.Event,
    ) -> list[SequenceResult]:
        """Sample every sequence's answer to ``prompt``; results in the order of ``sequences``.

        Greedy sequences with the same settings have one answer, computed once and repeated: decoding it
        again in other batch rows would only add rounding noise (a row's attention sums run over cells at
        other places in the shared cache), which can flip a near-tie and make "identical" answers differ.
        Each sequence's ``max_tokens`` is cut to what the context leaves after the prompt (as ``Llama``
        does). Raises :class:`DecodeCancelled` once ``cancelled`` is set, :class:`DecodeError` if llama.cpp
        fails a batch.
        """
        if not prompt:
            raise ValueError("the prompt has no tokens")
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
        results = self._run(prompt, runs, cancelled)
        return [results[i] for i in source]

    def _run(
        self, prompt: Sequence[int], sequences: list[SamplingParams], cancelled: threading.Event,
    ) -> list[SequenceResult]:
        lib = self._lib
        room = self.n_ctx - len(prompt)
        waiting = deque(enumerate(sequences))
        results: list[SequenceResult | None] = [None] * len(sequences)
        active: list[_Active] = []
        free_slots = list(range(self.max_parallel, 0, -1))
        lib.llama_memory_clear(self._memory, True)
        try:
            logits = self._decode_prompt(prompt, cancelled)
            used = len(prompt)  # the root's cells; each running sequence reserves its worst case on top
            while waiting or active:
                while waiting and free_slots:
                    index, params = waiting[0]
                    limit = max(1, min(params.max_tokens or room, room))
                    if active and used + limit > self.n_ctx:
                        break  # wait for a running sequence to free its cells
                    waiting.popleft()
                    seq = _Active(
                        index=index, params=params, slot=free_slots.pop(), sampler=self._sampler(params),
                        limit=limit, pos=len(prompt) - 1, next_token=-1,  # _consume moves it to the first
                        stops=tuple(s.encode("utf-8") for s in params.stop if s),
                    )
                    # The first token comes from the prompt's own logits, the same for every sequence.
                    finished = self._consume(seq, self._sample_from(seq.sampler, logits))
                    if finished is not None:
                        results[index] = finished
                        lib.llama_sampler_free(seq.sampler)
                        free_slots.append(seq.slot)
                        continue
                    lib.llama_memory_seq_cp(self._memory, 0, seq.slot, -1, -1)
                    used += limit
                    active.append(seq)
                if not active:
                    continue
                if cancelled.is_set():
                    raise DecodeCancelled
                self._step(active)
                for seq in list(active):
                    token = lib.llama_sampler_sample(seq.sampler, self._ctx, seq.row)
                    finished = self._consume(seq, token)
                    if finished is not None:
                        results[seq.index] = finished
                        active.remove(seq)
                        lib.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
                        lib.llama_sampler_free(seq.sampler)
                        seq.sampler = None
                        free_slots.append(seq.slot)
                        used -= seq.limit
        finally:
            for seq in active:
                if seq.sampler is not None:
                    lib.llama_sampler_free(seq.sampler)
            lib.llama_memory_clear(self._memory, True)
        return [r for r in results if r is not None]

    def _decode_prompt(self, tokens: Sequence[int], cancelled: threading.Event) -> Any:
        """Decode the prompt into the root sequence in chunks; a copy of its last position's logits."""
        lib = self._lib
        batch = self._batch
        for start in range(0, len(tokens), self.n_batch):
            if cancelled.is_set():
                raise DecodeCancelled
            chunk = tokens[start:start + self.n_batch]
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
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
            data=candidates.ctypes.data_as(lib.llama_token_data_p), size=len(candidates), selected=-1,
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
        seq.text += self._piece.raw[:max(0, size)]
        if seq.stops:
            # Only the new piece's bytes (plus a stop's length of context) can complete a stop string.
            window = max(len(s) for s in seq.stops) + max(0, size)
            tail_start = max(0, len(seq.text) - window)
            hits = [i for s in seq.stops if (i := seq.text.find(s, tail_start)) >= 0]
            if hits:
                del seq.text[min(hits):]
                return self._result(seq, "stop")
        if seq.tokens >= seq.limit:
            return self._result(seq, "length")
        seq.next_token = token
        seq.pos += 1
        return None

    @staticmethod
    def _result(seq: _Active, reason: str) -> SequenceResult:
        return SequenceResult(
            text=bytes(seq.text).decode("utf-8", errors="ignore"), finish_reason=reason,
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
