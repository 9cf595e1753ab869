"""The mock OpenAI-compatible server: the answers it draws, its HTTP surface and its counters."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter

import anyio
import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkloop.testing import (
    MockConfig,
    MockModel,
    MockServerProcess,
    question_key,
    right_answer,
    serve_mock,
    vote_right_probability,
)

_FINAL = re.compile(r"The answer is (-?\d+)\.$")


def _answers(texts: list[str]) -> list[int]:
    values = []
    for text in texts:
        match = _FINAL.search(text)
        assert match is not None, text
        values.append(int(match.group(1)))
    return values


def _client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0)


def _body(question: str, **extra: object) -> dict[str, object]:
    return {"model": "mock", "messages": [{"role": "user", "content": question}], **extra}


# --- the answer distribution, without HTTP ---------------------------------------------------------------
def test_question_key_and_right_answer_find_the_last_sum_in_any_template() -> None:
    wrapped = "Solve carefully.\n\nQuestion: What is 17 + 25?\nThink step by step."
    assert right_answer("What is 17 + 25?") == right_answer(wrapped) == 42
    assert question_key("What is 17 + 25?") == question_key(wrapped) == "17+25"
    assert right_answer("What is 1 + 2? No: what is 30 + 12?") == 42
    # No sum: the whole text is the key and the right answer is fixed by a hash.
    assert question_key("  Name a colour.  ") == "Name a colour."
    assert right_answer("Name a colour.") == right_answer("Name a colour.")


def test_one_request_with_n_draws_the_same_answers_as_n_single_requests() -> None:
    together = MockModel().complete(_body("What is 120 + 7?", n=8))
    separate = MockModel()
    singles = [separate.complete(_body("What is 120 + 7?"))["choices"][0] for _ in range(8)]
    texts = [c["message"]["content"] for c in together["choices"]]
    assert texts == [c["message"]["content"] for c in singles]
    assert [c["index"] for c in together["choices"]] == list(range(8))


def test_reset_replays_the_same_answers_and_a_new_seed_changes_them() -> None:
    model = MockModel()
    first = model.complete(_body("What is 300 + 45?", n=16))["choices"]
    model.reset()
    again = model.complete(_body("What is 300 + 45?", n=16))["choices"]
    other = MockModel(MockConfig(seed=1)).complete(_body("What is 300 + 45?", n=16))["choices"]
    assert first == again
    assert [c["message"]["content"] for c in first] != [c["message"]["content"] for c in other]


def test_answers_follow_the_configured_distribution() -> None:
    model = MockModel(MockConfig(p_right=0.6, distractors=10))
    right = wrong = 0
    for a in range(100):
        question = f"What is {a} + 1000?"
        for value in _answers([c["message"]["content"] for c in model.complete(_body(question, n=20))["choices"]]):
            if value == a + 1000:
                right += 1
            else:
                wrong += 1
                assert 1 <= abs(value - (a + 1000)) <= 5
    # 2000 deterministic draws: the share of right answers sits near 0.6.
    assert 0.56 < right / (right + wrong) < 0.64


def test_max_tokens_truncates_and_says_length() -> None:
    choice = MockModel().complete(_body("What is 1 + 1?", max_tokens=3))["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"].split()) == 3


def test_max_choices_imitates_a_server_that_ignores_n() -> None:
    model = MockModel(MockConfig(max_choices=1))
    response = model.complete(_body("What is 2 + 2?", n=8))
    assert len(response["choices"]) == 1
    assert model.stats.requests_by_n == {8: 1}
    assert model.stats.choices == 1


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, _body("What is 1 + 1?", n=0), _body("What is 1 + 1?", stream=True)],
)
def test_bad_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MockModel().complete(body)


@pytest.mark.parametrize(
    ("option", "value"),
    [("latency", -1.0), ("p_right", 1.5), ("distractors", 3), ("distractors", 0), ("max_choices", 0)],
)
def test_config_rejects_impossible_values(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        MockConfig(**{option: value})  # type: ignore[arg-type]


def _vote_right_by_enumeration(n: int, p_right: float, distractors: int) -> float:
    q = (1 - p_right) / distractors
    total = 0.0
    for draw in itertools.product(range(distractors + 1), repeat=n):  # 0 is the right answer
        probability = 1.0
        for value in draw:
            probability *= p_right if value == 0 else q
        counts = Counter(draw)
        top = max(counts.values())
        leaders = [v for v, c in counts.items() if c == top]
        if 0 in leaders:
            total += probability / len(leaders)
    return total


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5),
    p_right=st.floats(min_value=0.05, max_value=0.95),
    distractors=st.sampled_from([2, 4]),
)
def test_vote_right_probability_matches_enumeration(n: int, p_right: float, distractors: int) -> None:
    exact = vote_right_probability(n, p_right=p_right, distractors=distractors)
    assert exact == pytest.approx(_vote_right_by_enumeration(n, p_right, distractors), abs=1e-9)


def test_vote_right_probability_for_the_benchmark_setting() -> None:
    assert vote_right_probability(1) == pytest.approx(0.6)
    assert 0.98 < vote_right_probability(8) < 0.99


# --- over HTTP, through the openai SDK --------------------------------------------------------------------
@pytest.mark.anyio
async def test_chat_completion_through_the_sdk_honours_n_and_reports_usage() -> None:
    async with serve_mock() as server:
        client = _client(server.base_url)
        response = await client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "What is 17 + 25?"}], n=8
        )
        models = await client.models.list()
        await client.close()
    assert len(response.choices) == 8
    assert all(c.finish_reason == "stop" for c in response.choices)
    assert Counter(_answers([c.message.content or "" for c in response.choices]))[42] >= 1
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == sum(len((c.message.content or "").split()) for c in response.choices)
    assert [m.id for m in models.data] == ["mock"]
    assert server.stats.requests == 1
    assert server.stats.choices == 8
    assert server.stats.requests_by_n == {8: 1}


@pytest.mark.anyio
async def test_keep_alive_reuses_one_connection() -> None:
    async with serve_mock() as server:
        client = _client(server.base_url)
        for a in range(5):
            await client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": f"What is {a} + 1?"}]
            )
        await client.close()
    assert server.stats.requests == 5
    assert server.stats.connections == 1


@pytest.mark.anyio
async def test_requests_overlap_and_max_in_flight_counts_them() -> None:
    # A long latency holds every request open; the test waits until all eight are in the server at once.
    async with serve_mock(MockConfig(latency=60.0)) as server:
        client = _client(server.base_url)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for a in range(8):
                    group.start_soon(
                        lambda a=a: client.chat.completions.create(
                            model="mock", messages=[{"role": "user", "content": f"What is {a} + 2?"}]
                        )
                    )
                while server.stats.in_flight < 8:
                    await anyio.sleep(0.01)
                group.cancel_scope.cancel()
        await client.close()
    assert server.stats.max_in_flight == 8


@pytest.mark.anyio
async def test_http_errors_come_back_in_the_api_shape() -> None:
    async with serve_mock() as server:
        client = _client(server.base_url)
        with pytest.raises(openai.BadRequestError, match="does not stream"):
            await client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        await client.close()
        async with httpx2.AsyncClient(base_url=server.base_url.removesuffix("/v1")) as http:
            missing = await http.get("/v2/nothing")
            broken = await http.post("/v1/chat/completions", content=b"{not json")
            stats = await http.get("/stats")
            reset = await http.post("/reset")
    assert missing.status_code == 404
    assert broken.status_code == 400
    assert set(broken.json()["error"]) >= {"message", "type"}
    assert stats.json()["errors"] == 2
    assert reset.json() == {"reset": True}
    assert server.stats.errors == 0


def test_server_in_its_own_process_serves_and_resets() -> None:
    with MockServerProcess(MockConfig(latency=0.0)) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        request = json.dumps(_body("What is 5 + 5?", n=3)).encode()

        async def ask() -> dict[str, object]:
            async with httpx2.AsyncClient() as http:
                response = await http.post(f"{server.base_url}/chat/completions", content=request)
                return response.json()

        answer = anyio.run(ask)
        assert len(answer["choices"]) == 3  # type: ignore[arg-type]
        stats = server.stats()
        assert (stats["requests"], stats["choices"], stats["requests_by_n"]) == (1, 3, {"3": 1})
        server.reset()
        assert server.stats()["requests"] == 0
