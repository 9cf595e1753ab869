"""``thinkloop serve`` through the official ``openai`` client, sync and async, streamed and not.

The server runs as a subprocess in front of the project's mock server (every answer right, so each reply
can be checked exactly); each test talks to it the way a user's application would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest

from serve_support import ServeProcess, ask, sdk_client
from thinkloop.testing import MockConfig, MockServerProcess

LATENCY = 0.1


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockConfig(latency=LATENCY, p_right=1.0)) as server:
        yield server


@pytest.fixture(scope="module")
def serve(mock: MockServerProcess) -> Iterator[ServeProcess]:
    with ServeProcess("--base-url", mock.base_url, "--model", "mock", "--strategy", "cot") as server:
        yield server


@pytest.fixture
def client(serve: ServeProcess) -> Iterator[openai.OpenAI]:
    with sdk_client(serve) as client:
        yield client


def trace(serve: ServeProcess, run_id: str) -> list[dict]:
    response = httpx2.get(f"{serve.url}/traces/{run_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def calls(events: list[dict]) -> list[dict]:
    """The finished model calls of a trace (each node's last version)."""
    nodes = {e["node"]["id"]: e["node"] for e in events if e["kind"] == "node"}
    return [n for n in nodes.values() if n.get("request") and n["status"] == "done"]


# --- selection: every way of choosing a strategy --------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "extra", "strategy", "selected_by"),
    [
        ("mock", {}, "cot", "default"),
        ("thinkloop", {}, "cot", "default"),
        ("thinkloop[sc:n=4]/mock", {}, "sc:n=4", "model"),
        ("thinkloop[sc:n=4]", {}, "sc:n=4", "model"),
        (
            "mock",
            {"extra_body": {"thinkloop": {"strategy": "bon:n=2,scorer=judge"}}},
            "bon:n=2,scorer=judge",
            "thinkloop",
        ),
        ("mock", {"reasoning_effort": "none"}, "direct", "reasoning_effort"),
        ("mock", {"reasoning_effort": "low"}, "sc-adaptive:n=8", "reasoning_effort"),
        ("moa-mock", {}, "moa:n=3", "optillm"),  # optillm's slug, and its body field
        ("mock", {"extra_body": {"optillm_approach": "deepconf"}}, "deepconf", "optillm"),
    ],
)
def test_every_selection_method(
    client: openai.OpenAI, model: str, extra: dict, strategy: str, selected_by: str
) -> None:
    reply = client.chat.completions.create(model=model, messages=ask(), **extra)
    info = reply.thinkloop  # type: ignore[attr-defined]
    assert (info["strategy"], info["selected_by"], info["answer"]) == (strategy, selected_by, "42")
    assert reply.choices[0].message.content.endswith("42.")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == model


def test_effort_sets_the_budget_from_its_table(client: openai.OpenAI) -> None:
    from thinkloop.serve.effort import EFFORT_TABLE

    reply = client.chat.completions.create(model="mock", messages=ask(), reasoning_effort="medium")
    assert reply.thinkloop["budget"]["tokens"] == EFFORT_TABLE["medium"].tokens  # type: ignore[attr-defined]


# --- the reply: answer, readable reasoning, summed usage, the run -----------------------------------------
def test_self_consistency_reply_is_open(client: openai.OpenAI, serve: ServeProcess, mock: MockServerProcess) -> None:
    mock.reset()
    reply = client.chat.completions.create(
        model="mock", messages=ask(), extra_body={"thinkloop": {"strategy": "sc:n=8"}}
    )
    stats = mock.stats()
    message = reply.choices[0].message
    reasoning = message.reasoning_content  # type: ignore[attr-defined]
    assert reasoning.count("Sample ") == 8 and "Vote over 8 of 8 samples: 42 ×8 → 42." in reasoning
    assert reasoning.index("Sample 8") < reasoning.index("Vote over") < reasoning.index("Stopped: completed")
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (stats["prompt_tokens"], stats["completion_tokens"])
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # The mock bills one token per word, and one call drew all eight samples: seven of them are reasoning.
    answer_tokens = len(message.content.split())
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens - answer_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    info = reply.thinkloop  # type: ignore[attr-defined]
    assert info["calls"] == stats["requests"] == 1 and info["stop_reason"] == "completed"
    assert reply.id == f"chatcmpl-{info['run_id']}"
    events = trace(serve, info["run_id"])
    finished = events[-1]
    assert events[0]["kind"] == "run_started" and finished["kind"] == "run_finished"
    assert (finished["run_id"], finished["stop_reason"], finished["answer"]) == (info["run_id"], "completed", "42")


def test_budget_stopped_run_returns_its_best_answer_with_finish_length(client: openai.OpenAI) -> None:
    # critique makes its calls one after another; a budget of a few calls stops it early.
    reply = client.chat.completions.create(
        model="mock",
        messages=ask(),
        extra_body={"thinkloop": {"strategy": "critique:max_rounds=5", "budget": {"tokens": 700}}},
    )
    info = reply.thinkloop  # type: ignore[attr-defined]
    assert info["stop_reason"] == "budget" and reply.choices[0].finish_reason == "length"
    assert info["answer"] == "42" and reply.choices[0].message.content
    assert reply.usage.total_tokens <= 700
    assert "The budget refused a further call" in reply.choices[0].message.reasoning_content  # type: ignore[attr-defined]


def test_n_returns_independent_runs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="thinkloop[sc:n=3]", messages=ask(), n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    runs = reply.thinkloop["runs"]  # type: ignore[attr-defined]
    assert len({r["run_id"] for r in runs}) == 3 and all(r["answer"] == "42" for r in runs)
    assert reply.usage.completion_tokens > 3 * len(reply.choices[0].message.content.split())


# --- faithful to the request ------------------------------------------------------------------------------
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": "Use digits."},
    {"role": "user", "content": "What is 1 + 1?"},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": [{"type": "text", "text": "And 12 + 30?"}]},
]


def test_direct_sends_the_whole_conversation_as_it_came(client: openai.OpenAI, serve: ServeProcess) -> None:
    reply = client.chat.completions.create(model="thinkloop[direct]", messages=CONVERSATION, temperature=0.3)
    (call,) = calls(trace(serve, reply.thinkloop["run_id"]))  # type: ignore[attr-defined]
    sent = [(m["role"], m["content"]) for m in call["request"]["messages"]]
    assert sent == [
        ("system", "You are terse."),
        ("system", "Use digits."),
        ("user", "What is 1 + 1?"),
        ("assistant", "2"),
        ("user", "And 12 + 30?"),
    ]
    assert call["request"]["temperature"] == 0.3
    assert reply.thinkloop["answer"] == "42"  # type: ignore[attr-defined]


def test_strategies_keep_the_turns_after_their_own_system_prompt(client: openai.OpenAI, serve: ServeProcess) -> None:
    reply = client.chat.completions.create(model="thinkloop[sc:n=2]", messages=CONVERSATION, max_tokens=64)
    (call,) = calls(trace(serve, reply.thinkloop["run_id"]))  # type: ignore[attr-defined]
    roles = [m["role"] for m in call["request"]["messages"]]
    assert roles == ["system", "system", "system", "user", "assistant", "user"]
    assert call["request"]["messages"][0]["content"].startswith("You are a careful problem solver")
    assert call["request"]["max_tokens"] == 64 and call["request"]["n"] == 2


def test_tools_pass_through_for_direct(client: openai.OpenAI, serve: ServeProcess) -> None:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
    reply = client.chat.completions.create(
        model="thinkloop[direct]",
        messages=ask(),
        tools=tools,
        response_format={"type": "text"},
        seed=7,
    )
    (call,) = calls(trace(serve, reply.thinkloop["run_id"]))  # type: ignore[attr-defined]
    assert call["request"]["extra_body"] == {"tools": tools, "response_format": {"type": "text"}, "seed": 7}


# --- streaming --------------------------------------------------------------------------------------------
def test_stream_sends_reasoning_while_the_run_works(client: openai.OpenAI) -> None:
    # critique with 3 rounds makes 7 calls one after another: the first step is done after one of them.
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="thinkloop[critique:max_rounds=3]",
        messages=ask(),
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals, reasoning, content, finish, usage, info = [], [], [], None, None, None
    for chunk in stream:
        arrivals.append(time.perf_counter() - started)
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None):
            reasoning.append(delta.reasoning_content)  # type: ignore[attr-defined]
            assert not content, "reasoning comes before the answer"
        if delta.content:
            content.append(delta.content)
        if chunk.choices[0].finish_reason:
            finish, info = chunk.choices[0].finish_reason, chunk.thinkloop  # type: ignore[attr-defined]
    total = arrivals[-1]
    assert total >= 7 * LATENCY
    assert arrivals[0] < total / 3, (arrivals[0], total)  # the first sample arrives long before the end
    assert len(reasoning) >= 7 and reasoning[0].startswith("Strategy critique:max_rounds=3 on mock")
    # (the mock answers a revision's prompt, which has no sum in its last message, with some other number)
    assert finish == "stop" and info["calls"] == 7 and "".join(content).endswith(f"{info['answer']}.")
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens > 0


@pytest.mark.anyio
async def test_async_client_streams_and_answers(serve: ServeProcess) -> None:
    async with openai.AsyncOpenAI(base_url=serve.url, api_key="unused", max_retries=0) as client:
        reply = await client.chat.completions.create(model="thinkloop[sc:n=2]", messages=ask("What is 2 + 2?"))
        assert reply.thinkloop["answer"] == "4"  # type: ignore[attr-defined]
        stream = await client.chat.completions.create(
            model="mock",
            messages=ask("What is 2 + 3?"),
            stream=True,
            reasoning_effort="minimal",
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).endswith("5.")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].thinkloop["strategy"] == "cot"  # type: ignore[attr-defined]


def test_models_and_health(client: openai.OpenAI, serve: ServeProcess) -> None:
    assert [m.id for m in client.models.list()] == ["mock", "thinkloop"]
    health = httpx2.get(f"{serve.root}/health").json()
    assert health["status"] == "ok" and health["model"] == "mock" and health["runs_in_flight"] == 0


def test_upstream_key_never_reaches_a_client_or_the_log(client: openai.OpenAI, serve: ServeProcess) -> None:
    from conftest import DUMMY_API_KEY

    reply = client.chat.completions.create(model="mock", messages=ask())
    seen = reply.model_dump_json() + httpx2.get(f"{serve.url}/traces/{reply.thinkloop['run_id']}").text  # type: ignore[attr-defined]
    assert DUMMY_API_KEY not in seen and DUMMY_API_KEY not in serve.log()


def test_a_runs_trace_is_served_as_the_viewer_page(client: openai.OpenAI, serve: ServeProcess) -> None:
    reply = client.chat.completions.create(model="thinkloop[sc:n=3]", messages=ask(), max_tokens=64)
    run_id = reply.thinkloop["run_id"]  # type: ignore[attr-defined]
    page = httpx2.get(f"{serve.url}/traces/{run_id}/view")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in page.text and run_id in page.text
    assert httpx2.get(f"{serve.url}/traces/nope/view").status_code == 404
