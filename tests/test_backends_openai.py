"""OpenAIBackend through the real ``openai`` SDK, with a mock HTTP transport as its ``http_client``.

Response bodies are shaped like the API's own (ids, ``object``, ``created``, usage details), so the SDK's
parsing runs exactly as it would against the service.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from thinkloop import (
    BackendError,
    BackendUnavailable,
    ChainOfThought,
    Direct,
    Engine,
    ModelNotFound,
    OpenAIBackend,
    RateLimited,
    Strategy,
)
from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.result import Outcome
from thinkloop.runtime.trace import load_trace
from thinkloop.types import ChatRequest, Message, TokenLogprob, Usage

pytestmark = pytest.mark.anyio

BASE_URL = "https://api.openai.com/v1"
SECRET = "sk-proj-SECRETSECRETSECRET0123456789abcdef"


def chat_completion(
    model: str,
    contents: list[str],
    *,
    prompt_tokens: int = 25,
    completion_tokens: int = 12,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    finish_reason: str = "stop",
    logprobs: list[tuple[str, float]] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` body as the API returns it."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None
                if logprobs is None
                else {
                    "content": [
                        {"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": []}
                        for token, lp in logprobs
                    ],
                    "refusal": None,
                },
                "finish_reason": finish_reason,
            }
            for index, content in enumerate(contents)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    }


def api_error(message: str, *, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class Server:
    """A mock transport's handler that records what the SDK sent."""

    def __init__(self, respond: Callable[[dict[str, Any], int], httpx2.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx2.Request] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        body = json.loads(request.content) if request.content else {}
        self.bodies.append(body)
        return self.respond(body, len(self.bodies))

    def backend(self, model: str = "gpt-4o-mini", **kwargs: Any) -> OpenAIBackend:
        kwargs.setdefault("base_url", BASE_URL)
        kwargs.setdefault("max_retries", 0)
        return OpenAIBackend(model, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)), **kwargs)


def replying(*contents: str, **usage: Any) -> Server:
    return Server(lambda body, _: httpx2.Response(200, json=chat_completion(body["model"], list(contents), **usage)))


# --- requests and responses ----------------------------------------------------------------------------
async def test_a_chat_request_carries_every_sampling_setting_and_zero_temperature() -> None:
    server = replying("Paris.", prompt_tokens=25, completion_tokens=3)
    backend = server.backend()
    request = ChatRequest.of(
        "Capital of France?", system="Be brief.", temperature=0, top_p=0.5, max_tokens=16, seed=3, stop=("\n",)
    )
    completion = await backend.complete(request)

    sent = server.bodies[0]
    assert server.requests[0].url == "https://api.openai.com/v1/chat/completions"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert sent["temperature"] == 0  # zero is greedy, not "unset"
    assert (sent["top_p"], sent["max_tokens"], sent["seed"], sent["stop"]) == (0.5, 16, 3, ["\n"])
    assert "n" not in sent and "logprobs" not in sent
    assert completion.text == "Paris."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage == Usage(prompt_tokens=25, completion_tokens=3, reasoning_tokens=0, cached_prompt_tokens=0)
    assert completion.model == "gpt-4o-mini"
    assert completion.latency_s >= 0


async def test_unset_sampling_is_left_to_the_server() -> None:
    server = replying("ok")
    await server.backend().complete(ChatRequest.of("hi"))
    assert set(server.bodies[0]) == {"model", "messages"}


async def test_n_choices_come_back_in_index_order() -> None:
    def respond(body: dict[str, Any], _: int) -> httpx2.Response:
        payload = chat_completion(body["model"], ["a", "b", "c"])
        payload["choices"].reverse()
        return httpx2.Response(200, json=payload)

    server = Server(respond)
    completion = await server.backend().complete(ChatRequest.of("q", n=3))
    assert server.bodies[0]["n"] == 3
    assert [c.text for c in completion.choices] == ["a", "b", "c"]


async def test_logprobs_are_requested_and_read() -> None:
    server = replying("Hi!", logprobs=[("Hi", -0.25), ("!", -0.75)])
    completion = await server.backend().complete(ChatRequest.of("hello", logprobs=True))
    assert server.bodies[0]["logprobs"] is True
    assert server.bodies[0]["top_logprobs"] == 0
    assert completion.choices[0].logprobs == (
        TokenLogprob(token="Hi", logprob=-0.25),
        TokenLogprob(token="!", logprob=-0.75),
    )
    assert completion.choices[0].mean_logprob == -0.5


async def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = replying("ok")
    await server.backend().complete(ChatRequest.of("hi"))
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_n_is_assumed_honoured_and_a_server_that_returns_fewer_is_remembered() -> None:
    """Fast by default: every server is sent ``n``; one that answers fewer choices (llama.cpp, Ollama) is asked
    one choice at a time from then on, by this backend and any later one for the same server and model."""
    url = f"http://127.0.0.1:8081/{uuid.uuid4().hex}/v1"  # the memory is per process: a fresh server per run
    short = Server(lambda body, count: httpx2.Response(200, json=chat_completion(body["model"], [f"Answer: {count}"])))
    first = short.backend("short-model", base_url=url)
    assert first.capabilities.honours_n is True
    await first.complete(ChatRequest.of("q").model_copy(update={"n": 4}))
    assert first.capabilities.honours_n is False
    assert short.backend("short-model", base_url=url).capabilities.honours_n is False
    assert short.backend("another-model", base_url=url).capabilities.honours_n is True
    assert short.backend("short-model", base_url=url, honours_n=True).capabilities.honours_n is True

    full = Server(lambda body, _: httpx2.Response(200, json=chat_completion(body["model"], ["x"] * body.get("n", 1))))
    backend = full.backend("full-model", base_url="http://127.0.0.1:8082/v1")
    await backend.complete(ChatRequest.of("q").model_copy(update={"n": 4}))
    assert backend.capabilities.honours_n is True


async def test_sc_on_a_server_that_ignores_n_still_gets_every_sample_with_the_fewest_requests() -> None:
    from thinkloop import SelfConsistency

    server = Server(lambda body, count: httpx2.Response(200, json=chat_completion(body["model"], [f"Answer: {count}"])))
    backend = server.backend("ignores-n", base_url=f"http://127.0.0.1:8083/{uuid.uuid4().hex}/v1")
    first = await SelfConsistency(n=8, max_tokens=16).run("q", backend=backend)
    assert first.usage.calls == 8 and len(first.attempts) == 8
    assert [b.get("n") for b in server.bodies] == [8] + [None] * 7  # one try with n, then top-ups
    second = await SelfConsistency(n=8, max_tokens=16).run("q", backend=backend)
    assert len(second.attempts) == 8
    assert [b.get("n") for b in server.bodies[8:]] == [None] * 8  # remembered: no second try with n


# --- the o1 profile ------------------------------------------------------------------------------------
async def test_an_o1_request_has_no_system_role_no_temperature_and_max_completion_tokens() -> None:
    server = replying("4", prompt_tokens=20, completion_tokens=580, reasoning_tokens=512, cached_tokens=128)
    backend = server.backend("o1")
    request = ChatRequest(
        messages=(
            Message(role="system", content="You are terse."),
            Message(role="user", content="What is 2 + 2?"),
        ),
        temperature=0.7,
        top_p=0.9,
        max_tokens=1000,
        logprobs=True,
    )
    completion = await backend.complete(request)

    sent = server.bodies[0]
    assert sent["messages"] == [{"role": "user", "content": "You are terse.\n\nWhat is 2 + 2?"}]
    assert all(m["role"] != "system" for m in sent["messages"])
    assert "temperature" not in sent and "top_p" not in sent and "logprobs" not in sent
    assert sent["max_completion_tokens"] == 1000 and "max_tokens" not in sent
    assert completion.usage == Usage(
        prompt_tokens=20, completion_tokens=580, reasoning_tokens=512, cached_prompt_tokens=128
    )
    assert backend.capabilities.system_messages is False


@pytest.mark.parametrize("model", ["o1", "o1-mini", "o3-mini", "o1-2024-12-17", "openai/o3-mini"])
def test_reasoning_models_get_the_reasoning_profile(model: str) -> None:
    profile = OpenAIBackend(model, base_url=BASE_URL).profile
    assert (profile.system_role, profile.max_tokens_param, profile.sampling_params) == (
        False,
        "max_completion_tokens",
        False,
    )


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "llama3", "omni-7b"])
def test_chat_models_keep_the_chat_profile(model: str) -> None:
    assert OpenAIBackend(model, base_url=BASE_URL).profile.system_role is True


async def test_o1_reasoning_tokens_reach_the_run_usage_once() -> None:
    server = replying("Answer: 4", prompt_tokens=20, completion_tokens=580, reasoning_tokens=512, cached_tokens=0)
    result = await Direct().run("What is 2 + 2?", backend=server.backend("o1"))
    assert result.answer == "4"
    assert (result.usage.calls, result.usage.reasoning_tokens) == (1, 512)
    assert result.usage.total_tokens == 600  # reasoning is inside the 580 completion tokens


async def test_a_system_message_alone_becomes_the_first_user_message() -> None:
    server = replying("ok")
    request = ChatRequest(messages=(Message(role="system", content="Rules."), Message(role="assistant", content="Hi")))
    await server.backend("o1-mini").complete(request)
    assert server.bodies[0]["messages"] == [
        {"role": "user", "content": "Rules."},
        {"role": "assistant", "content": "Hi"},
    ]


# --- errors, mapped once -------------------------------------------------------------------------------
async def test_connection_refused_is_backend_unavailable_naming_the_url() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    backend = OpenAIBackend(
        "m",
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)),
    )
    with pytest.raises(BackendUnavailable, match=re.escape("cannot reach http://127.0.0.1:9/v1/")):
        await backend.complete(ChatRequest.of("hi"))


async def test_429_is_rate_limited_with_the_wait_the_server_asked_for_and_no_sdk_retry() -> None:
    body = api_error("Rate limit reached for gpt-4o-mini", type_="requests", code="rate_limit_exceeded")
    server = Server(lambda *_: httpx2.Response(429, json=body, headers={"retry-after-ms": "1"}))
    with pytest.raises(RateLimited, match="Rate limit reached for gpt-4o-mini") as caught:
        await server.backend(max_retries=2).complete(ChatRequest.of("hi"))
    assert caught.value.retryable and caught.value.retry_after == 0.001
    assert len(server.requests) == 1  # the SDK does not retry: the runtime does, budgeting each attempt


async def test_the_runtime_retries_a_429_each_attempt_a_node_of_its_own() -> None:
    body = api_error("Rate limit reached", type_="requests", code="rate_limit_exceeded")
    server = Server(lambda *_: httpx2.Response(429, json=body, headers={"retry-after-ms": "1"}))
    result = await Direct().run("q", backend=server.backend(max_retries=2))
    assert len(server.requests) == 3
    assert result.stop_reason == "error" and result.error is not None and "Rate limit reached" in result.error
    failed = [n for n in result.graph.nodes() if n.status == "failed"]
    assert [(n.data or {}).get("attempt") for n in failed] == [None, 2, 3]


async def test_a_retry_that_succeeds_gives_the_answer_and_counts_both_attempts() -> None:
    def flaky(body: dict[str, Any], count: int) -> httpx2.Response:
        if count == 1:
            return httpx2.Response(
                429, json=api_error("slow down", type_="requests", code=None), headers={"retry-after-ms": "1"}
            )
        return httpx2.Response(200, json=chat_completion(body["model"], ["Answer: fine"]))

    server = Server(flaky)
    result = await Direct().run("q", backend=server.backend(max_retries=1))
    assert result.answer == "fine"
    assert len(server.requests) == 2
    assert result.usage.calls == 2


async def test_404_is_model_not_found_naming_the_model() -> None:
    body = api_error(
        "The model `gpt-9` does not exist or you do not have access to it.",
        type_="invalid_request_error",
        code="model_not_found",
    )
    server = Server(lambda *_: httpx2.Response(404, json=body))
    with pytest.raises(ModelNotFound, match=re.escape("model 'gpt-9' not found at https://api.openai.com/v1/")):
        await server.backend("gpt-9").complete(ChatRequest.of("hi"))


async def test_other_statuses_are_backend_errors_with_the_status() -> None:
    body = api_error("The server had an error while processing your request.", type_="server_error", code=None)
    server = Server(lambda *_: httpx2.Response(500, json=body))
    with pytest.raises(BackendError, match="answered 500"):
        await server.backend().complete(ChatRequest.of("hi"))


async def test_a_failed_backend_ends_the_run_with_an_error_not_an_exception() -> None:
    server = Server(lambda *_: httpx2.Response(404, json=api_error("no such model", type_="x", code=None)))
    result = await ChainOfThought().run("q", backend=server.backend("nope"))
    assert result.answer is None
    assert result.stop_reason == "error"
    assert result.error is not None and "'nope' not found" in result.error


# --- sampling through the engine -----------------------------------------------------------------------
class Sample(Strategy):
    name = "sample"

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.samples: Samples | None = None

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        self.samples = await ctx.sample(self.request(question), self.k, parents=[parent], strategy=self.name)
        return Outcome(candidate=None, stop_reason="completed")


async def test_fewer_choices_than_n_are_topped_up_with_single_calls() -> None:
    # A server that claims to honour n but returns one choice (as llama.cpp and Ollama do).
    server = Server(lambda body, count: httpx2.Response(200, json=chat_completion(body["model"], [f"Answer: {count}"])))
    backend = server.backend(base_url="http://127.0.0.1:8080/v1", honours_n=True)
    strategy = Sample(3)
    await Engine(backend).run(strategy, "q")

    samples = strategy.samples
    assert samples is not None
    assert samples.received == 3
    assert sorted(c.answer for c in samples.candidates) == ["1", "2", "3"]
    assert [b.get("n") for b in server.bodies] == [3, None, None]
    assert any("returned 1 of 3 choices" in note for note in samples.notes)


async def test_a_backend_that_does_not_honour_n_gets_k_single_requests() -> None:
    server = replying("Answer: 7")
    backend = server.backend(base_url="http://127.0.0.1:8080/v1", honours_n=False)
    strategy = Sample(4)
    await Engine(backend).run(strategy, "q")
    assert strategy.samples is not None and strategy.samples.received == 4
    assert [b.get("n") for b in server.bodies] == [None] * 4


# --- secrets -------------------------------------------------------------------------------------------
async def test_the_api_key_never_reaches_a_trace_or_a_repr(tmp_path: Path) -> None:
    # The API echoes a prefix of a wrong key; a proxy might echo all of it. Neither may reach the trace.
    body = api_error(f"Incorrect API key provided: {SECRET}.", type_="invalid_request_error", code="invalid_api_key")
    failing = Server(lambda *_: httpx2.Response(401, json=body))
    backend = failing.backend(api_key=SECRET)
    assert SECRET not in repr(backend)
    trace = tmp_path / "trace.jsonl"
    result = await ChainOfThought().run("q", backend=backend, trace_path=trace)
    assert failing.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert result.stop_reason == "error"

    working = replying("Answer: 1")
    await ChainOfThought().run("q", backend=working.backend(api_key=SECRET), trace_path=trace)
    text = trace.read_text()
    assert text.count('"run_finished"') == 2
    assert SECRET not in text
    assert SECRET[:12] not in text
    assert SECRET not in json.dumps(result.to_json_dict())


# --- typed failures: the HTTP status travels on the error, the node, the trace and the result ---------------
async def test_an_http_status_reaches_the_error_the_node_the_trace_and_the_result(tmp_path: Path) -> None:
    body = api_error(
        "This model's maximum context length is 8192 tokens",
        type_="invalid_request_error",
        code="context_length_exceeded",
    )
    server = Server(lambda *_: httpx2.Response(400, json=body))
    with pytest.raises(BackendError) as caught:
        await server.backend().complete(ChatRequest.of("hi"))
    assert caught.value.status == 400 and not caught.value.retryable

    trace = tmp_path / "run.jsonl"
    result = await Direct().run("q", backend=server.backend(), trace_path=trace)
    assert result.stop_reason == "error" and result.failure is not None
    assert (result.failure.kind, result.failure.status, result.failure.maybe_billed) == ("backend", 400, False)
    assert result.error == result.failure.message and "maximum context length" in result.error
    [node] = [n for n in result.graph.nodes() if n.status == "failed"]
    assert node.failure == result.failure and result.failures == [result.failure]
    [recorded] = [
        e.node for e in load_trace(trace) if getattr(e, "node", None) is not None and e.node.status == "failed"
    ]
    assert recorded.failure == result.failure  # typed in the JSONL, read back typed
    [finished] = [e for e in load_trace(trace) if e.kind == "run_finished"]
    assert finished.failure == result.failure


async def test_a_429_is_a_typed_rate_limit_with_its_wait() -> None:
    body = api_error("slow down", type_="requests", code="rate_limit_exceeded")
    server = Server(lambda *_: httpx2.Response(429, json=body, headers={"retry-after-ms": "1500"}))
    result = await Direct().run("q", backend=server.backend())
    assert result.failure is not None
    assert (result.failure.kind, result.failure.status, result.failure.retry_after) == ("rate_limited", 429, 1.5)
    assert result.failure.retryable
