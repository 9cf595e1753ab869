"""The in-process prefix cache: prompts that extend an earlier prompt evaluate only their new tokens, and give
exactly the tokens a fresh evaluation gives; the kept states stay within their byte bound, least recently used
evicted first."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.backends.llamacpp import LlamaCppBackend, _Cancelled, _import_llama_cpp
from thinkloop.backends.llamacpp_prefix import (
    Entry,
    PrefixCache,
    common_prefix,
    evaluate,
    kept_prefix,
    reusable,
)
from thinkloop.types import ChatRequest, Message

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the model, not the event loop, is tested


def entry(tokens: tuple[int, ...], nbytes: int) -> Entry:
    return Entry(tokens=tokens, state=None, nbytes=nbytes)


# --- the cache's bookkeeping --------------------------------------------------------------------------------
def test_the_least_recently_used_entry_is_evicted_first() -> None:
    cache = PrefixCache(capacity_bytes=250)
    cache.store(entry((1, 2, 3), 100))
    cache.store(entry((4, 5, 6), 100))
    assert cache.longest([1, 2, 3, 9])[1] == 3
    cache.touch((1, 2, 3))  # reused: now the more recently used
    cache.store(entry((7, 8, 9), 100))
    assert cache.prompts() == [(1, 2, 3), (7, 8, 9)]
    assert cache.nbytes == 200


def test_an_entry_larger_than_the_capacity_is_not_kept_and_evicts_nothing_it_does_not_extend() -> None:
    cache = PrefixCache(capacity_bytes=150)
    cache.store(entry((1, 2), 100))
    cache.store(entry((5, 6, 7), 151))
    assert cache.prompts() == [(1, 2)]
    assert cache.nbytes == 100


def test_an_entry_is_replaced_by_one_that_extends_it() -> None:
    cache = PrefixCache(capacity_bytes=1000)
    cache.store(entry((1, 2), 10))
    cache.store(entry((1, 3), 10))
    cache.store(entry((1, 2, 4, 5), 30))
    assert cache.prompts() == [(1, 3), (1, 2, 4, 5)]
    assert cache.nbytes == 40
    found, shared = cache.longest([1, 2, 4, 6])
    assert found is not None and found.tokens == (1, 2, 4, 5) and shared == 3
    assert cache.longest([9])[0] is None


@given(st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=1, max_size=6), st.integers(1, 120)), max_size=30))
def test_the_kept_bytes_never_exceed_the_capacity_and_add_up(stores: list[tuple[list[int], int]]) -> None:
    cache = PrefixCache(capacity_bytes=200)
    for tokens, nbytes in stores:
        cache.store(entry(tuple(tokens), nbytes))
        assert cache.nbytes <= 200
    assert cache.nbytes == sum(cache._entries[k].nbytes for k in cache.prompts())
    if stores:  # the newest entry is always kept when it fits
        tokens, nbytes = stores[-1]
        assert (tuple(tokens) in cache) == (nbytes <= 200)


def test_a_negative_capacity_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="capacity_bytes"):
        PrefixCache(-1)
    with pytest.raises(ValueError, match="capacity_bytes"):
        LlamaCppBackend(prefix_cache_bytes=-1)


@pytest.mark.parametrize(
    ("shared", "length", "expected"),
    [(0, 10, 0), (10, 10, 8), (9, 10, 8), (5, 10, 5), (7, 20, 6), (8, 20, 8), (15, 20, 14), (16, 17, 14)],
)
def test_the_reused_part_leaves_no_lone_token_to_evaluate(shared: int, length: int, expected: int) -> None:
    assert reusable(shared, length, n_batch=8) == expected


def chunks(start: int, length: int, n_batch: int) -> list[tuple[int, int]]:
    """The chunks :func:`evaluate` decodes: from ``start``, ending at multiples of ``n_batch`` and at the end."""
    found, position = [], start
    while position < length:
        end = min(length, (position // n_batch + 1) * n_batch)
        found.append((position, end))
        position = end
    return found


@given(st.integers(2, 16), st.integers(1, 80), st.data())
def test_a_reused_evaluation_decodes_a_lone_token_only_where_a_fresh_one_does(
    n_batch: int, length: int, data: st.DataObject
) -> None:
    shared = data.draw(st.integers(0, length))
    reuse = reusable(shared, length, n_batch)
    assert 0 <= reuse <= max(0, min(shared, length - 2))
    fresh = chunks(0, length, n_batch)
    for start, end in chunks(reuse, length, n_batch):
        if end - start == 1:
            assert (start, end) in fresh


def test_a_prompt_whose_last_chunk_is_one_token_is_kept_without_it() -> None:
    assert kept_prefix(list(range(17)), n_batch=8) == tuple(range(16))
    assert kept_prefix(list(range(18)), n_batch=8) == tuple(range(18))
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2


# --- exactness on the real model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cached() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(n_threads=1)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def uncached() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(n_threads=1, prefix_cache_bytes=0)
    yield backend
    backend.close()


def last_logits(llama: Any) -> bytes:
    """The logits after the last evaluated token, as raw bytes: compared bit for bit."""
    numpy = pytest.importorskip("numpy")
    pointer = _import_llama_cpp().llama_get_logits_ith(llama._ctx.ctx, -1)
    return numpy.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),)).tobytes()


@pytest.mark.integration
def test_a_reused_prefix_gives_the_very_logits_of_a_fresh_evaluation(cached: LlamaCppBackend) -> None:
    """Splits of a prompt into an earlier prompt and its extension, with chunks of 8 so chunk boundaries and
    lone tokens are crossed often: the logits after the reuse are bit for bit a fresh evaluation's."""
    llama = cached._model()
    tokens = cached._prompt_tokens(ChatRequest.of("Name the largest planet and one of its moons.").messages)[0]
    n_batch = 8
    evaluate(llama, tokens, 0, n_batch)
    fresh = last_logits(llama)
    length = len(tokens)
    # around chunk boundaries, and the last few tokens (the whole prompt again included)
    for earlier in sorted({1, 7, 8, 9, 16, 17, 31, 32, 33, length - 2, length - 1, length} - {0}):
        evaluate(llama, tokens[:earlier], 0, n_batch)
        reuse = reusable(common_prefix(kept_prefix(tokens[:earlier], n_batch), tokens), len(tokens), n_batch)
        evaluate(llama, tokens, reuse, n_batch)
        assert last_logits(llama) == fresh, f"earlier prompt of {earlier} tokens, {reuse} reused"


async def critique_loop(backend: LlamaCppBackend, rounds: int = 3, **sampling: object) -> list[tuple[str, int, int]]:
    """Ask, then ask again with the answer and a critique appended: each prompt extends the one before."""
    messages = [Message(role="user", content="What is 17 * 23? Answer briefly.")]
    replies = []
    for _ in range(rounds):
        completion = await backend.complete(ChatRequest(messages=tuple(messages), max_tokens=24, **sampling))
        usage = completion.usage
        replies.append((completion.choices[0].text, usage.prompt_tokens or 0, usage.cached_prompt_tokens or 0))
        messages += [
            Message(role="assistant", content=completion.choices[0].text),
            Message(role="user", content="Check that answer step by step and give a corrected one."),
        ]
    return replies


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("sampling", [{"seed": 7, "temperature": 0.8}, {"temperature": 0}])
async def test_a_prompt_that_extends_an_earlier_one_reuses_it_and_answers_as_without_the_cache(
    cached: LlamaCppBackend, uncached: LlamaCppBackend, sampling: dict[str, object]
) -> None:
    with_cache = await critique_loop(cached, **sampling)
    without = await critique_loop(uncached, **sampling)
    assert [text for text, _, _ in with_cache] == [text for text, _, _ in without]
    assert [prompt for _, prompt, _ in with_cache] == [prompt for _, prompt, _ in without]
    assert all(reused == 0 for _, _, reused in without)
    for (_, before, _), (_, prompt, reused) in itertools.pairwise(with_cache):
        # the whole earlier prompt at least (an entry left by an earlier test may share more), at most two again
        assert before - 2 <= reused < prompt - 1


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_a_kept_prompt_is_reused_after_other_requests_moved_the_context_on(cached: LlamaCppBackend) -> None:
    first = ChatRequest.of("List three prime numbers.", max_tokens=8, seed=3)
    base = await cached.complete(first)
    await cached.complete(ChatRequest.of("Something else entirely, about boats.", max_tokens=8))
    again = await cached.complete(first)
    assert again.text == base.text
    assert again.usage.cached_prompt_tokens == (base.usage.prompt_tokens or 0) - 2
    extended = ChatRequest(
        messages=(*first.messages, Message(role="assistant", content=base.text), Message(role="user", content="More.")),
        max_tokens=8,
        seed=3,
    )
    reply = await cached.complete(extended)
    assert reply.usage.cached_prompt_tokens == base.usage.prompt_tokens


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_the_memory_bound_holds_on_the_model_and_evicts_the_oldest_prompt() -> None:
    backend = LlamaCppBackend(n_threads=1)
    try:
        await backend.complete(ChatRequest.of("Tell me about cats.", max_tokens=1))
        one = backend.prefix_cache.nbytes
        backend.prefix_cache.capacity_bytes = one * 5 // 2  # room for two such prompts, not three
        questions = ["Tell me about dogs.", "Tell me about birds.", "Tell me about fish."]
        for question in questions:
            await backend.complete(ChatRequest.of(question, max_tokens=1))
            assert backend.prefix_cache.nbytes <= backend.prefix_cache.capacity_bytes
        assert len(backend.prefix_cache) == 2
        texts = [backend._model().detokenize(list(key)).decode() for key in backend.prefix_cache.prompts()]
        assert ["birds" in texts[0], "fish" in texts[1]] == [True, True]
        # "cats" was evicted: asked again, only the part it shares with the kept prompts is reused
        cats = await backend.complete(ChatRequest.of("Tell me about cats.", max_tokens=1))
        assert 0 < (cats.usage.cached_prompt_tokens or 0) < (cats.usage.prompt_tokens or 0) - 2
    finally:
        backend.close()
    assert len(backend.prefix_cache) == 0 and backend.prefix_cache.nbytes == 0


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_batched_and_sequential_choices_still_work_with_the_cache(cached: LlamaCppBackend) -> None:
    request = ChatRequest.of("Name a colour.", max_tokens=6, n=3, seed=5, temperature=1.0)
    batched = await cached.complete(request)
    assert len(batched.choices) == 3 and batched.usage.prompt_tokens == cached.count_prompt_tokens(request.messages)
    sequential = LlamaCppBackend(n_threads=1, max_parallel=1)
    plain = LlamaCppBackend(n_threads=1, max_parallel=1, prefix_cache_bytes=0)
    try:
        one_by_one = await sequential.complete(request)
        reference = await plain.complete(request)
        assert [c.text for c in one_by_one.choices] == [c.text for c in reference.choices]
        assert len({c.text for c in one_by_one.choices}) > 1  # each choice keeps its own seed
    finally:
        sequential.close()
        plain.close()


@pytest.mark.integration
def test_a_prompt_evaluation_cancelled_before_it_ends_leaves_nothing_to_reuse(cached: LlamaCppBackend) -> None:
    llama = cached._model()
    request = ChatRequest.of("Count to five.", max_tokens=6, seed=1)
    tokens = cached._prompt_tokens(request.messages)[0]
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(_Cancelled):
        cached._evaluate_prompt(llama, tokens, stopped)
    assert cached._live == () and tuple(tokens) not in cached.prefix_cache


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_an_answer_after_a_cancelled_request_is_the_fresh_answer(
    cached: LlamaCppBackend, uncached: LlamaCppBackend
) -> None:
    request = ChatRequest.of("Count to five.", max_tokens=6, seed=1)
    with anyio.move_on_after(0):
        await cached.complete(request)
    assert (await cached.complete(request)).text == (await uncached.complete(request)).text


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_a_thinking_budget_request_in_between_does_not_disturb_the_reuse(
    cached: LlamaCppBackend, uncached: LlamaCppBackend
) -> None:
    request = ChatRequest.of("Name two rivers.", max_tokens=8, seed=2)
    await cached.complete(request)
    await cached.complete(ChatRequest.of("Name two rivers. Think first.", max_tokens=24, thinking_budget=4))
    again = await cached.complete(request)
    assert (again.usage.cached_prompt_tokens or 0) > 0
    assert again.text == (await uncached.complete(request)).text


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_unseeded_requests_draw_the_same_seeds_with_the_cache_as_without() -> None:
    """``Llama`` draws an unseeded request's seed from its last one; a loaded state must not rewind that chain
    (the same prompt asked twice would repeat its sample)."""
    hot = ChatRequest.of("Name an animal.", max_tokens=6, temperature=1.5)
    other = ChatRequest.of("Name a city.", max_tokens=2, temperature=1.5)
    replies = []
    for capacity in (0, 2**26):
        backend = LlamaCppBackend(n_threads=1, prefix_cache_bytes=capacity)
        try:
            texts = []
            for request in (hot, other, hot, hot):  # the second `hot` loads its state from the cache
                texts.append((await backend.complete(request)).text)
            replies.append(texts)
        finally:
            backend.close()
    assert replies[0] == replies[1]
