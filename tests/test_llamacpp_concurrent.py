"""Continuous batching on the real embedded model: requests in flight at once decode in the same steps, each
with its own sampler, stops and limit, and leave the batch as they finish or are cancelled.

Which requests a driver admits together depends on when their worker threads submit them; the tests that
count rows hold the first admission until every request is submitted (``hold_admission``), so the batch
they check is the same on every run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import anyio
import pytest

from thinkloop.backends.llamacpp import BATCH_ENV, LlamaCppBackend
from thinkloop.backends.llamacpp_batch import BatchDecoder
from thinkloop.exceptions import BackendError
from thinkloop.types import ChatRequest, Completion

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the model, not the event loop, is tested
PROMPTS = ["Name three colours.", "Say hi.", "What is 2+2?", "Name a fruit."]


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(n_threads=1, max_parallel=4)
    yield backend
    backend.close()


async def decoder_of(backend: LlamaCppBackend) -> BatchDecoder:
    """The backend's batch decoder, made by a small n=2 request if it has none yet."""
    if backend._decoder is None:
        await backend.complete(ChatRequest.of("Hi.", max_tokens=1, n=2))
    assert backend._decoder is not None
    return backend._decoder


def hold_admission(decoder: BatchDecoder, count: int) -> Callable[[], None]:
    """Make the next driver wait (at most 30 s) until ``count`` jobs are submitted before it admits any;
    returns the function that restores the decoder's own hook."""
    original = decoder.on_idle

    def wait(d: BatchDecoder) -> None:
        deadline = time.monotonic() + 30
        while d.pending() < count and time.monotonic() < deadline:
            time.sleep(0.001)
        decoder.on_idle = original
        if original is not None:
            original(d)

    decoder.on_idle = wait
    return lambda: setattr(decoder, "on_idle", original)


async def together(backend: LlamaCppBackend, requests: list[ChatRequest]) -> list[Completion]:
    results: list[Completion | None] = [None] * len(requests)

    async def one(index: int, request: ChatRequest) -> None:
        results[index] = await backend.complete(request)

    async with anyio.create_task_group() as group:
        for index, request in enumerate(requests):
            group.start_soon(one, index, request)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_concurrent_requests_decode_in_the_same_steps_and_give_their_lone_answers(
    backend: LlamaCppBackend,
) -> None:
    requests = [ChatRequest.of(p, temperature=0, max_tokens=6) for p in PROMPTS]
    decoder = await decoder_of(backend)
    decoder.step_rows.clear()
    alone = [await backend.complete(r) for r in requests]  # one at a time: the sequential path
    assert list(decoder.step_rows) == []  # a lone n=1 request never enters the batch
    restore = hold_admission(decoder, len(requests))
    try:
        batched = await together(backend, requests)
    finally:
        restore()
    assert max(decoder.step_rows) == len(requests)  # all four advanced in the same decode steps
    assert [c.text for c in batched] == [c.text for c in alone]
    for request, lone, shared in zip(requests, alone, batched, strict=True):
        assert shared.usage.prompt_tokens == lone.usage.prompt_tokens == backend.count_prompt_tokens(request.messages)
        assert shared.usage.completion_tokens == lone.usage.completion_tokens
        assert shared.choices[0].finish_reason == lone.choices[0].finish_reason
    # The first admitted evaluates its whole prompt; the others copy the shared system prompt's cells from it
    # and evaluate only their own tokens (at least the last two).
    cached = [(c.usage.cached_prompt_tokens, c.usage.prompt_tokens or 0) for c in batched]
    assert [n for n, _ in cached].count(0) == 1
    assert all(0 < n <= total - 2 for n, total in cached if n)
    assert decoder.idle and decoder.busy_sequences() == []


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_a_cancelled_request_leaves_the_batch_within_one_step_and_the_others_go_on(
    backend: LlamaCppBackend,
) -> None:
    short = ChatRequest.of(PROMPTS[0], temperature=0, max_tokens=40)
    decoder = await decoder_of(backend)
    decoder.step_rows.clear()
    restore = hold_admission(decoder, 2)
    finished: list[Completion] = []
    cancelled_at: list[int] = []
    try:
        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()

            async def long() -> None:
                with scope:
                    await backend.complete(ChatRequest.of("Write a very long essay about the sea.", max_tokens=2000))
                    finished.append(None)  # type: ignore[arg-type]  # never: it is cancelled

            async def other() -> None:
                finished.append(await backend.complete(short))

            group.start_soon(long)
            group.start_soon(other)
            with anyio.fail_after(60):
                while len(decoder.step_rows) < 3:
                    await anyio.sleep(0.005)
            cancelled_at.append(len(decoder.step_rows))
            scope.cancel()
    finally:
        restore()
    assert scope.cancelled_caught
    assert len(finished) == 1  # the other request finished
    (completion,) = finished
    rows = list(decoder.step_rows)
    assert rows[:3] == [2, 2, 2]
    # The step running when the cancellation came may still carry it; every later one has only the other,
    # which went on to its own end.
    later = rows[cancelled_at[0] + 1 :]
    assert later and set(later) == {1}
    tokens = completion.usage.completion_tokens
    assert len(rows) in (tokens - 1, tokens)  # its first token comes from the prompt; a stop ends it a step early
    assert (completion.choices[0].finish_reason == "length") == (tokens == 40)
    with anyio.fail_after(30):  # the abandoned worker hands the decoder back within a step
        while not decoder.idle:
            await anyio.sleep(0.01)
    assert decoder.busy_sequences() == []


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_many_requests_leave_nothing_behind(backend: LlamaCppBackend) -> None:
    decoder = await decoder_of(backend)
    cache_bytes = backend.prefix_cache.nbytes
    for wave in range(3):
        requests = [
            ChatRequest.of(
                PROMPTS[i % len(PROMPTS)],
                temperature=0.9,
                max_tokens=1 + (i + wave) % 4,
                seed=i,
                n=1 + i % 2,
                stop=["\n"] if i == 3 else None,
            )
            for i in range(6)
        ]
        completions = await together(backend, requests)
        for request, completion in zip(requests, completions, strict=True):
            assert len(completion.choices) == request.n
            assert completion.usage.completion_tokens <= request.n * (request.max_tokens or 0)
            for choice in completion.choices:
                assert choice.finish_reason in {"stop", "length"}
        # Between waves the decoder holds no job, slot, root or KV cell: nothing grows per request.
        assert decoder.idle and decoder.busy_sequences() == []
        assert decoder.pending() == 0
    assert backend.prefix_cache.nbytes == cache_bytes  # batched requests neither use nor fill the prefix cache


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_with_batching_off_requests_queue_and_a_lone_request_keeps_the_prefix_cache(
    backend: LlamaCppBackend,
) -> None:
    assert backend.capabilities.max_concurrency == 4  # the engine lets max_parallel requests in flight
    off = LlamaCppBackend(n_threads=1, batch_requests=False)
    try:
        assert off.capabilities.max_concurrency == 1
        requests = [ChatRequest.of(p, temperature=0, max_tokens=3) for p in PROMPTS[:2]]
        completions = await together(off, requests)
        assert off._decoder is None  # n=1 requests never reached the batch
        again = await off.complete(requests[0])
        assert again.text == completions[0].text
        assert (again.usage.cached_prompt_tokens or 0) > 0  # the one-at-a-time path reuses the kept prompt
    finally:
        await off.aclose()


def test_the_batching_switch_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BATCH_ENV, raising=False)
    assert LlamaCppBackend().batch_requests and LlamaCppBackend().capabilities.max_concurrency == 16
    assert not LlamaCppBackend(max_parallel=1).batch_requests  # nothing to batch with one slot
    monkeypatch.setenv(BATCH_ENV, "0")
    off = LlamaCppBackend()
    assert not off.batch_requests and off.capabilities.max_concurrency == 1
    assert LlamaCppBackend(batch_requests=True).batch_requests
    monkeypatch.setenv(BATCH_ENV, "maybe")
    with pytest.raises(ValueError, match=r"\$THINKLOOP_BATCH_REQUESTS must be 0 or 1 .* got 'maybe'"):
        LlamaCppBackend()


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_a_lone_request_that_gets_company_goes_on_in_the_batch(backend: LlamaCppBackend) -> None:
    essay = ChatRequest.of("Write a very long essay about the sea.", temperature=0, max_tokens=40)
    lone = await backend.complete(essay)  # alone: the one-at-a-time path from start to end
    assert lone.choices[0].finish_reason == "length"
    decoder = await decoder_of(backend)
    decoder.step_rows.clear()
    llama = backend._model()
    prompt_length = backend.count_prompt_tokens(essay.messages) or 0
    await backend.complete(ChatRequest.of("Hi.", max_tokens=1))  # the context now holds fewer tokens than that
    assert llama.n_tokens < prompt_length
    results: dict[str, Completion] = {}

    async def first() -> None:
        results["first"] = await backend.complete(essay)

    async def second() -> None:
        results["second"] = await backend.complete(ChatRequest.of(PROMPTS[1], temperature=0, max_tokens=30))

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        with anyio.fail_after(60):  # the first is alone for its first few tokens
            while llama.n_tokens < prompt_length + 5:
                await anyio.sleep(0.002)
        group.start_soon(second)
    handed = results["first"]
    assert max(decoder.step_rows) == 2  # it went on in the batch, beside the second
    # Its first tokens came from the one-at-a-time path, exactly as alone; the rest from the batch.
    words = lone.text.split()
    assert handed.text.startswith(" ".join(words[:2]))
    # Usage is the request's, whichever path decoded which tokens: 40 tokens, its prompt, the prefix reused.
    assert handed.choices[0].finish_reason == "length"
    assert handed.usage.completion_tokens == 40
    assert handed.usage.prompt_tokens == prompt_length
    assert (handed.usage.cached_prompt_tokens or 0) >= prompt_length - 2  # kept from the lone run
    assert 25 <= len(llama.tokenize(handed.text.encode(), add_bos=False)) <= 45
    assert results["second"].usage.completion_tokens <= 30
    assert decoder.idle and decoder.busy_sequences() == []


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_an_error_in_the_driver_fails_its_requests_clearly_and_leaves_nothing(backend: LlamaCppBackend) -> None:
    decoder = await decoder_of(backend)
    original = decoder.on_idle

    def broken(d: BatchDecoder) -> None:
        raise RuntimeError("thread measurement broke")

    decoder.on_idle = broken
    try:
        with pytest.raises(BackendError, match="batched decoding failed: RuntimeError\\('thread measurement broke'\\)"):
            await backend.complete(ChatRequest.of(PROMPTS[0], max_tokens=2, n=2))
    finally:
        decoder.on_idle = original
    assert decoder.idle and decoder.busy_sequences() == []
    after = await backend.complete(ChatRequest.of(PROMPTS[0], max_tokens=2, n=2))  # the decoder still serves
    assert len(after.choices) == 2
