"""What self-consistency sends over the wire: counted by the mock OpenAI-compatible server.

SC@8 must cost one request with ``n=8`` per question where the backend honours ``n``, and eight concurrent
single requests where it does not; a server that returns fewer choices than asked is topped up.
"""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from thinkloop import Engine, OpenAIBackend
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.testing import MockConfig, MockModel, right_answer, serve_mock

QUESTIONS = [f"What is {a} + {b}?" for a, b in [(12, 30), (100, 23), (7, 8), (450, 51), (66, 66)]]


def _backend(base_url: str, *, honours_n: bool) -> OpenAIBackend:
    return OpenAIBackend("mock", base_url=base_url, honours_n=honours_n, max_concurrency=32, max_retries=0)


async def _run_all(engine: Engine, strategy: SelfConsistency, questions: list[str]) -> dict[str, str | None]:
    answers: dict[str, str | None] = {}

    async def one(question: str) -> None:
        answers[question] = (await engine.run(strategy, question)).answer

    async with anyio.create_task_group() as group:
        for question in questions:
            group.start_soon(one, question)
    return answers


def _plurality(question: str, k: int) -> str | None:
    """The answer a vote over the mock's first ``k`` answers must pick, when no other answer ties it."""
    response = MockModel().complete({"messages": [{"role": "user", "content": question}], "n": k})
    values = [c["message"]["content"].rsplit(" ", 1)[-1].rstrip(".") for c in response["choices"]]
    (top, votes), *rest = Counter(values).most_common()
    return None if rest and rest[0][1] == votes else top


@pytest.mark.anyio
async def test_sc8_sends_one_request_with_n8_per_question_when_n_is_honoured() -> None:
    async with serve_mock() as server:
        backend = _backend(server.base_url, honours_n=True)
        answers = await _run_all(Engine(backend), SelfConsistency(n=8), QUESTIONS)
        await backend.aclose()
    stats = server.stats
    assert stats.requests == len(QUESTIONS)
    assert stats.requests_by_n == {8: len(QUESTIONS)}
    assert stats.choices == 8 * len(QUESTIONS)
    for question in QUESTIONS:
        expected = _plurality(question, 8)
        if expected is not None:
            assert answers[question] == expected
    assert sum(answers[q] == str(right_answer(q)) for q in QUESTIONS) >= 4


@pytest.mark.anyio
async def test_sc8_sends_eight_concurrent_requests_when_n_is_not_honoured() -> None:
    async with serve_mock() as server:
        backend = _backend(server.base_url, honours_n=False)
        answers = await _run_all(Engine(backend), SelfConsistency(n=8), QUESTIONS)
        assert server.stats.requests == 8 * len(QUESTIONS)
        assert server.stats.requests_by_n == {1: 8 * len(QUESTIONS)}
        # The same eight answers as one request with n=8 would have drawn, so the same vote.
        for question in QUESTIONS:
            expected = _plurality(question, 8)
            if expected is not None:
                assert answers[question] == expected
        await backend.aclose()

    # Concurrent, not one after another: with replies held back, all eight are in the server at once.
    async with serve_mock(MockConfig(latency=60.0)) as server:
        backend = _backend(server.base_url, honours_n=False)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(Engine(backend).run, SelfConsistency(n=8), QUESTIONS[0])
                while server.stats.in_flight < 8:
                    await anyio.sleep(0.01)
                group.cancel_scope.cancel()
        await backend.aclose()
    assert server.stats.max_in_flight == 8
    assert server.stats.requests_by_n == {1: 8}


@pytest.mark.anyio
async def test_a_server_that_returns_fewer_choices_is_topped_up_with_single_requests() -> None:
    async with serve_mock(MockConfig(max_choices=3)) as server:
        backend = _backend(server.base_url, honours_n=True)
        result = await Engine(backend).run(SelfConsistency(n=8), QUESTIONS[1])
        await backend.aclose()
    assert server.stats.requests_by_n == {8: 1, 1: 5}
    assert server.stats.choices == 8
    assert result.data is not None
    assert result.data["samples"] == 8


@pytest.mark.anyio
async def test_one_engine_keeps_its_concurrency_limit_across_questions() -> None:
    async with serve_mock() as server:
        backend = _backend(server.base_url, honours_n=False)
        questions = [f"What is {a} + 1?" for a in range(12)]
        await _run_all(Engine(backend, max_concurrency=4), SelfConsistency(n=8), questions)
        await backend.aclose()
    assert server.stats.requests == 8 * len(questions)
    assert server.stats.max_in_flight <= 4


@pytest.mark.anyio
async def test_adaptive_sc_draws_fewer_samples_than_fixed() -> None:
    questions = [f"What is {a} + 200?" for a in range(20)]
    async with serve_mock() as server:
        backend = _backend(server.base_url, honours_n=True)
        answers = await _run_all(Engine(backend), SelfConsistency(n=8, adaptive=True), questions)
        await backend.aclose()
    assert server.stats.choices < 8 * len(questions)
    assert sum(answers[q] == str(right_answer(q)) for q in questions) >= 18
