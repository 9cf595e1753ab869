"""Batched sampling on the real embedded model: n answers to one prompt in shared decode steps.

The reference is the path that samples the answers one after another (``max_parallel=1``) and the single
answer of an ``n=1`` request: greedy decoding must agree with both. Replies are kept to a few tokens.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator

import anyio
import pytest

from thinkloop.backends.llamacpp import LlamaCppBackend, _import_llama_cpp
from thinkloop.backends.llamacpp_batch import BatchDecoder, DecodeCancelled, SamplingParams, sampler_seed
from thinkloop.backends.llamacpp_threads import (
    THREADS_ENV,
    ThreadChoice,
    default_threads,
    prepare_openmp,
    thread_candidates,
)
from thinkloop.types import ChatRequest

PROMPT = "Name three colours."
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the model, not the event loop, is tested


@pytest.fixture(scope="module")
def sequential() -> Iterator[LlamaCppBackend]:
    """Today's path: the n answers one after another, the prompt's KV cache reused."""
    backend = LlamaCppBackend(max_parallel=1, n_threads=1)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def decoder(smollm2: LlamaCppBackend) -> Iterator[BatchDecoder]:
    """A small decoder of its own (3 slots, 256 cells) on the session's model, to test waves and limits."""
    llama = smollm2._model()
    small = BatchDecoder(_import_llama_cpp(), llama, n_ctx=256, n_threads=1, max_parallel=3)
    yield small
    small.close()


def prompt_tokens(backend: LlamaCppBackend, text: str) -> list[int]:
    prompt = backend._prompt_tokens(ChatRequest.of(text).messages)
    assert prompt is not None
    return prompt[0]


# --- agreement with the sequential path ---------------------------------------------------------------------
@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_greedy_batched_answers_equal_the_single_and_the_sequential_answer(
    smollm2: LlamaCppBackend, sequential: LlamaCppBackend
) -> None:
    # "Say hi." runs into a near-tie at its 14th token: decoded in several batch rows, greedy answers split there.
    single = await smollm2.complete(ChatRequest.of("Say hi.", temperature=0, max_tokens=20, seed=0))
    batched = await smollm2.complete(ChatRequest.of("Say hi.", temperature=0, max_tokens=20, n=5))
    one_by_one = await sequential.complete(ChatRequest.of("Say hi.", temperature=0, max_tokens=20, n=2, seed=1))
    assert single.text.strip()
    assert [c.text for c in batched.choices] == [single.text] * 5
    # The sequential path's later choices reuse the prompt's KV from the prefix cache. Replaying its last token
    # alone (llama.cpp's own reuse) flipped a near-tie at the fourth token here; the cache evaluates the last two
    # tokens together, exactly as a fresh evaluation does, so every choice is the single answer.
    assert [c.text for c in one_by_one.choices] == [single.text] * 2
    assert {c.finish_reason for c in batched.choices} == {single.choices[0].finish_reason}
    # The prompt is billed once; completion tokens are summed over the choices.
    assert (
        batched.usage.prompt_tokens
        == single.usage.prompt_tokens
        == smollm2.count_prompt_tokens(ChatRequest.of("Say hi.").messages)
    )
    assert batched.usage.completion_tokens == 5 * single.usage.completion_tokens


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_a_seeded_request_gives_the_same_answers_every_time(smollm2: LlamaCppBackend) -> None:
    hot = ChatRequest.of(PROMPT, temperature=1.5, max_tokens=10, n=6, seed=5)
    first = await smollm2.complete(hot)
    await smollm2.complete(ChatRequest.of("Something else.", max_tokens=3, n=2))
    again = await smollm2.complete(hot)
    other_seed = await smollm2.complete(hot.model_copy(update={"seed": 6}))
    texts = [c.text for c in first.choices]
    assert [c.text for c in again.choices] == texts
    assert first.usage == again.usage
    assert len(set(texts)) > 1  # each choice has its own seed
    assert [c.text for c in other_seed.choices] != texts


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_sixteen_answers_in_one_request(smollm2: LlamaCppBackend) -> None:
    completion = await smollm2.complete(ChatRequest.of(PROMPT, temperature=1.0, max_tokens=4, n=16))
    assert len(completion.choices) == 16
    assert {c.finish_reason for c in completion.choices} <= {"stop", "length"}
    assert 16 <= completion.usage.completion_tokens <= 64
    assert len({c.text for c in completion.choices}) > 1


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_a_stop_string_cuts_every_answer_before_it(smollm2: LlamaCppBackend) -> None:
    free = await smollm2.complete(ChatRequest.of(PROMPT, temperature=0, max_tokens=12, seed=0))
    words = free.text.split()
    assert len(words) >= 3
    stop = words[2]
    cut = await smollm2.complete(ChatRequest.of(PROMPT, temperature=0, max_tokens=12, n=3, stop=[stop]))
    expected = free.text[: free.text.index(stop)]
    assert [c.text for c in cut.choices] == [expected] * 3
    assert {c.finish_reason for c in cut.choices} == {"stop"}
    assert cut.usage.completion_tokens < 3 * free.usage.completion_tokens


# --- the decoder itself: per-sequence limits, waves of slots ---------------------------------------------------
@pytest.mark.integration
def test_each_sequence_keeps_its_own_token_limit_and_stop_strings(
    smollm2: LlamaCppBackend, decoder: BatchDecoder
) -> None:
    tokens = prompt_tokens(smollm2, PROMPT)
    limits = [1, 3, 8, 5, 2]  # five sequences through three slots: two wait for a free one
    greedy = [SamplingParams(max_tokens=limit, temperature=0) for limit in limits]
    results = decoder.generate(tokens, greedy, threading.Event())
    assert [r.completion_tokens for r in results] == limits
    assert {r.finish_reason for r in results} == {"length"}
    longest = results[2].text
    for result in results:
        assert longest.startswith(result.text)  # greedy: the same answer, cut at each sequence's limit
    stop = longest.split()[1]
    mixed = decoder.generate(
        tokens, [greedy[2], SamplingParams(max_tokens=8, temperature=0, stop=(stop,))], threading.Event()
    )
    assert mixed[0].text == longest
    assert (mixed[1].text, mixed[1].finish_reason) == (longest[: longest.index(stop)], "stop")
    assert decoder.busy_sequences() == []


@pytest.mark.integration
def test_limits_are_cut_to_the_context_and_sequences_wait_for_cells(
    smollm2: LlamaCppBackend, decoder: BatchDecoder
) -> None:
    tokens = prompt_tokens(smollm2, PROMPT)
    room = decoder.n_ctx - len(tokens)
    # Each asks for more than the whole context: they run one at a time, each cut to what is left.
    results = decoder.generate(
        tokens, [SamplingParams(max_tokens=10_000, temperature=0, stop=("\n",))] * 2, threading.Event()
    )
    assert all(r.completion_tokens <= room for r in results)
    assert results[0] == results[1]


@pytest.mark.integration
def test_a_cancelled_decode_raises_and_frees_every_slot(smollm2: LlamaCppBackend, decoder: BatchDecoder) -> None:
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(DecodeCancelled):
        decoder.generate(prompt_tokens(smollm2, PROMPT), [SamplingParams(max_tokens=4)] * 3, cancelled)
    assert decoder.busy_sequences() == []


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_cancelling_a_batch_midway_frees_the_model_for_the_next_request(smollm2: LlamaCppBackend) -> None:
    # Eight 2000-token answers take minutes; the next request must not wait for them.
    with anyio.move_on_after(1.0) as scope:
        await smollm2.complete(ChatRequest.of("Write a very long essay about the sea.", max_tokens=2000, n=8))
    assert scope.cancelled_caught
    with anyio.fail_after(60):
        after = await smollm2.complete(ChatRequest.of(PROMPT, temperature=0, max_tokens=4, n=16))
    assert len(after.choices) == 16
    assert smollm2._decoder is not None and smollm2._decoder.busy_sequences() == []


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_concurrent_requests_share_the_model(smollm2: LlamaCppBackend) -> None:
    results: dict[int, list[str]] = {}

    async def ask(n: int) -> None:
        completion = await smollm2.complete(ChatRequest.of(PROMPT, temperature=0, max_tokens=6, n=n, seed=0))
        results[n] = [c.text for c in completion.choices]

    async with anyio.create_task_group() as group:
        for n in (1, 2, 3):
            group.start_soon(ask, n)
    assert results[2] == results[1] * 2 and results[3] == results[1] * 3


# --- threads -----------------------------------------------------------------------------------------------
def test_the_thread_count_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    assert 3 in thread_candidates()
    from_env = LlamaCppBackend()
    assert (from_env.n_threads, from_env.batch_threads) == (3, 3)
    explicit = LlamaCppBackend(n_threads=2)
    assert (explicit.n_threads, explicit.batch_threads) == (2, 2)
    monkeypatch.delenv(THREADS_ENV)
    measured = LlamaCppBackend()
    assert measured.batch_threads is None  # measured on the batched decoder's first use
    assert 1 in thread_candidates()


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_a_bad_thread_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(THREADS_ENV, raw)
    with pytest.raises(ValueError, match=re.escape(f"${THREADS_ENV} must be a positive thread count, got {raw!r}")):
        LlamaCppBackend()


def test_bad_constructor_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_parallel must be at least 1, got 0"):
        LlamaCppBackend(max_parallel=0)
    with pytest.raises(ValueError, match="n_threads must be at least 1, got 0"):
        LlamaCppBackend(n_threads=0)


class FakeDecoder:
    """Step times by thread count, as ``BatchDecoder.measure_threads`` reports them."""

    def __init__(self, times: dict[int, float]) -> None:
        self.times, self.n_threads, self.measured = times, 1, 0
        self.step_limit_s: float | None = None
        self.dropped_threads = False

    def measure_threads(self, candidates: list[int]) -> dict[int, float]:
        self.measured += 1
        return {count: self.times.get(count, 1.0) for count in candidates}

    def set_threads(self, count: int) -> None:
        self.n_threads = count


def test_the_fastest_measured_thread_count_is_kept_and_measured_again_when_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(THREADS_ENV, "2")  # candidates 1 and 2 on any machine
    decoder = FakeDecoder({1: 0.4, 2: 0.1})
    fresh = ThreadChoice(None)
    assert fresh.apply(decoder) == 2 and fresh.timings == {1: 0.4, 2: 0.1}
    assert fresh.apply(decoder) == 2 and decoder.measured == 1  # not stale yet
    stale = ThreadChoice(None, remeasure_s=0)
    decoder.times = {1: 0.1, 2: 0.4}  # the machine got busy
    assert stale.apply(decoder) == 1 and stale.apply(decoder) == 1 and decoder.measured == 3
    fixed = ThreadChoice(2)
    assert fixed.apply(decoder) == 2 and decoder.measured == 3


def test_a_slow_step_on_two_threads_drops_to_one_and_the_count_is_measured_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(THREADS_ENV, "2")
    decoder = FakeDecoder({1: 0.4, 2: 0.1})
    choice = ThreadChoice(None)
    assert choice.apply(decoder) == 2 and decoder.step_limit_s == pytest.approx(0.3)
    decoder.times = {1: 0.1, 2: 0.9}  # the machine got busy mid-request: the decoder dropped to one thread
    decoder.n_threads, decoder.dropped_threads = 1, True
    assert choice.apply(decoder) == 1 and decoder.measured == 2  # measured again at once, not in two minutes
    assert decoder.step_limit_s is None and not decoder.dropped_threads  # one thread is not watched


def test_the_step_watch_drops_to_one_thread_only_past_its_limit() -> None:
    from thinkloop.backends.llamacpp_batch import BatchDecoder

    decoder = BatchDecoder.__new__(BatchDecoder)  # no model: only the watch's arithmetic
    set_to: list[int] = []
    decoder.set_threads = lambda count: (set_to.append(count), setattr(decoder, "n_threads", count))
    decoder.n_threads, decoder.step_limit_s, decoder.dropped_threads = 2, 0.3, False
    decoder._watch(0.29, rows=8)
    decoder._watch(0.5, rows=16)  # 16 rows may take twice the 8-row limit
    assert set_to == [] and not decoder.dropped_threads
    decoder._watch(0.31, rows=3)
    assert set_to == [1] and decoder.dropped_threads
    decoder._watch(5.0, rows=8)  # already on one thread: nothing more to drop
    assert set_to == [1]


def test_openmp_threads_spin_briefly_then_sleep_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.setenv(name, "")  # so that teardown restores whatever was there
        monkeypatch.delenv(name)
    prepare_openmp()
    assert (os.environ["OMP_WAIT_POLICY"], os.environ["GOMP_SPINCOUNT"]) == ("PASSIVE", "10000")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice: no spin limit imposed on it
    monkeypatch.delenv("GOMP_SPINCOUNT")
    prepare_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "500")
    prepare_openmp()
    assert "OMP_WAIT_POLICY" not in os.environ and os.environ["GOMP_SPINCOUNT"] == "500"


def test_sampler_seeds_are_32_bit_and_never_the_random_marker() -> None:
    assert sampler_seed(5) == 5
    assert sampler_seed(2**32 + 7) == 7
    assert sampler_seed(0xFFFFFFFF) == 0
    assert 0 <= sampler_seed(None) < 0xFFFFFFFF


@pytest.mark.integration
def test_measuring_threads_times_every_candidate(smollm2: LlamaCppBackend, decoder: BatchDecoder) -> None:
    timings = decoder.measure_threads([1, 2], rows=3, rounds=1)
    assert set(timings) == {1, 2} and all(t > 0 for t in timings.values())
    assert decoder.n_threads == 1 and decoder.busy_sequences() == []


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_aclose_frees_the_model_and_its_batched_context(sequential: LlamaCppBackend) -> None:
    backend = LlamaCppBackend(n_threads=1)
    await backend.complete(ChatRequest.of(PROMPT, temperature=0, max_tokens=2, n=2))
    assert backend.loaded and backend._decoder is not None
    await backend.aclose()
    assert not backend.loaded and backend._decoder is None
    await backend.aclose()  # twice is fine


# --- threads for one answer at a time ------------------------------------------------------------------------
def test_one_sequence_drops_to_one_thread_only_past_its_limit() -> None:
    from thinkloop.backends.llamacpp_threads import OneSequence

    single = OneSequence.__new__(OneSequence)  # no model: only the watch's arithmetic
    set_to: list[int] = []
    single.set_threads = lambda count: (set_to.append(count), setattr(single, "n_threads", count))
    single.n_threads, single.step_limit_s, single.dropped_threads = 2, 0.03, False
    single.watch(0.029)
    assert set_to == [] and not single.dropped_threads
    single.watch(0.031)
    assert set_to == [1] and single.dropped_threads
    single.watch(1.0)  # already on one thread
    assert set_to == [1]


@pytest.mark.integration
@asyncio_only
@pytest.mark.anyio
async def test_one_answer_at_a_time_measures_its_threads_without_disturbing_the_kept_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thinkloop.backends.llamacpp_threads import OneSequence

    monkeypatch.delenv(THREADS_ENV, raising=False)  # measured, not fixed
    backend = LlamaCppBackend(max_parallel=1)
    try:
        request = ChatRequest.of(PROMPT, temperature=0.8, max_tokens=8, seed=11)
        first = await backend.complete(request)
        candidates = thread_candidates()  # one core: nothing to choose, nothing measured
        assert set(backend.single_thread_timings) == (set(candidates) if len(candidates) > 1 else set())
        assert backend.single_threads in thread_candidates()
        llama = backend._model()
        held = llama.n_tokens
        single = OneSequence(_import_llama_cpp(), llama)
        timings = single.measure_threads([1, 2], rounds=1)
        assert set(timings) == {1, 2} and all(t > 0 for t in timings.values())
        assert llama.n_tokens == held
        # The kept prompt is still exact: the same seeded request reuses it and gives the same reply.
        again = await backend.complete(request)
        assert again.text == first.text
        assert (again.usage.cached_prompt_tokens or 0) > 0
    finally:
        backend.close()
