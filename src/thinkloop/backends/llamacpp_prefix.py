"""A prefix cache for the in-process model: the KV state of recent prompts, reused when a new prompt extends one.

Critique-and-revise, re-prompting with a check's feedback (``cot:max_rounds``), tree search and ``auto``'s later
stages send prompts that start with an earlier prompt (and often its answer); evaluating each from scratch pays
for the shared part again in every round. The backend keeps the context's state after evaluating each prompt
(``Llama.save_state``) and, for a new prompt, loads the entry sharing the longest prefix with it
(``Llama.load_state``) and evaluates only the rest.

**Exact, not approximately equal.** A cached prefix gives the same tokens as a fresh evaluation with the same
sampling. Measured on the embedded model: llama.cpp's CPU kernels compute a token's KV alike in any batch of two
or more tokens, wherever the batch starts, but differently in a batch of one (final logits differed by up to 0.7
when one token of a prompt was evaluated alone). So only work a fresh evaluation would do identically is reused:

- the prompt is evaluated in chunks that end where a fresh evaluation's do (multiples of ``n_batch``), from the
  reused length on (:func:`evaluate`);
- the reused length leaves at least two tokens to evaluate and never ends one token short of a chunk boundary
  (:func:`reusable`), so no chunk holds a lone token that a fresh evaluation computes in a batch;
- a prompt whose last chunk holds one token is kept without that token (:func:`kept_prefix`);
- tokens the model generated (decoded one at a time) are never reused, only prompts.

Why not ``Llama.set_cache(LlamaRAMCache(...))``: the library saves the state *after* each completion, keyed by
prompt plus generated tokens, so the next prompt reuses one-at-a-time KV and its reply drifts from a fresh one; it
replays the prompt's last token alone on an exact hit (the same drift); and its byte bound counts llama.cpp's
state but not the copy of up to ``n_batch`` rows of logits each saved state carries (100 MB for a 49k vocabulary).

**Memory and eviction**: least recently used by bytes. An entry's size is its llama.cpp state (the KV of its
tokens, the last logits) plus the arrays kept with it; adding one evicts the entries least recently stored or
reused until the total fits ``capacity_bytes``; an entry larger than the whole capacity is not kept. An entry
whose tokens are a prefix of a newer entry's is dropped when the newer one is stored: every prompt shares at
least as long a prefix with the newer entry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    tokens: tuple[int, ...]
    """The prompt tokens whose KV the state holds exactly (as a fresh evaluation computes them)."""
    state: Any
    """A ``llama_cpp.LlamaState``."""
    nbytes: int


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def reusable(shared: int, length: int, n_batch: int) -> int:
    """Of ``shared`` cached tokens of a ``length``-token prompt, how many can be reused exactly (see module doc)."""
    reuse = min(shared, length - 2)
    if reuse % n_batch == n_batch - 1:
        reuse -= 1  # the chunk up to the boundary would hold one token
    return max(0, reuse)


def kept_prefix(tokens: Sequence[int], n_batch: int) -> tuple[int, ...]:
    """The part of an evaluated prompt whose KV equals a fresh evaluation's in any longer prompt."""
    if len(tokens) % n_batch == 1:
        return tuple(tokens[:-1])  # evaluated alone: a longer prompt computes it in a batch
    return tuple(tokens)


def evaluate(
    llama: Any,
    tokens: Sequence[int],
    reuse: int,
    n_batch: int,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Evaluate ``tokens`` after their first ``reuse``, in chunks ending where a fresh evaluation's end;
    ``check`` runs before each chunk (it raises to cancel)."""
    llama.n_tokens = reuse  # ``Llama.eval`` removes the context's cells from here on before decoding
    position = reuse
    while position < len(tokens):
        end = min(len(tokens), (position // n_batch + 1) * n_batch)
        check()
        llama.eval(tokens[position:end])
        position = end


def snapshot(llama: Any, tokens: tuple[int, ...]) -> Entry:
    """The context's state for ``tokens``; of the logits rows ``save_state`` copies only the last is kept
    (``load_state`` broadcasts it; a loaded state is always evaluated further before it samples)."""
    state = llama.save_state()
    state.scores = state.scores[-1:].copy()
    nbytes = int(state.llama_state_size) + state.scores.nbytes + state.input_ids.nbytes
    return Entry(tokens=tokens, state=state, nbytes=nbytes)


class PrefixCache:
    """Prompt states, least recently used evicted first, within ``capacity_bytes`` in all."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be at least 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tokens: tuple[int, ...]) -> bool:
        return tokens in self._entries

    def prompts(self) -> list[tuple[int, ...]]:
        """Entries' tokens, least recently used first."""
        return list(self._entries)

    def longest(self, tokens: Sequence[int]) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with ``tokens`` (the newest of equals) and that length."""
        best, shared = None, 0
        for entry in reversed(self._entries.values()):
            length = common_prefix(entry.tokens, tokens)
            if length > shared:
                best, shared = entry, length
        return best, shared

    def touch(self, tokens: tuple[int, ...]) -> None:
        """Mark an entry used (its state was reused or its prompt evaluated again): evicted last."""
        if tokens in self._entries:
            self._entries.move_to_end(tokens)

    def store(self, entry: Entry) -> None:
        """Keep ``entry``, dropping entries it extends, then the least recently used until all fit."""
        for key in [k for k in self._entries if entry.tokens[: len(k)] == k]:
            self._drop(key)
        if entry.nbytes > self.capacity_bytes:
            return
        self._entries[entry.tokens] = entry
        self.nbytes += entry.nbytes
        while self.nbytes > self.capacity_bytes:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: tuple[int, ...]) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
