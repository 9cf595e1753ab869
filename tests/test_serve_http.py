"""``thinkloop serve`` over raw HTTP: every bad input and auth failure is one clear, OpenAI-shaped 4xx.

Also: an upstream 429 comes back as a 429 with ``Retry-After``, and so does a request past
``--max-concurrency``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest

from serve_support import RateLimitedUpstreamProcess, ServeProcess
from thinkloop.testing import MockConfig, MockServerProcess

KEY = "local-serve-key-123"
CAP = 4096
GOOD = {"model": "mock", "messages": [{"role": "user", "content": "What is 12 + 30?"}]}


@pytest.fixture(scope="module")
def serve() -> Iterator[ServeProcess]:
    with (
        MockServerProcess(MockConfig(latency=0.1, p_right=1.0)) as mock,
        ServeProcess(
            "--base-url",
            mock.base_url,
            "--model",
            "mock",
            "--api-key",
            KEY,
            "--max-concurrency",
            "1",
            "--max-body-bytes",
            str(CAP),
            "--max-n",
            "2",
        ) as server,
    ):
        yield server


@pytest.fixture
def http(serve: ServeProcess) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=serve.url, headers={"authorization": f"Bearer {KEY}"}, timeout=30) as client:
        yield client


def error_of(response: httpx2.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_good_request_with_the_key(http: httpx2.Client) -> None:
    response = http.post("/chat/completions", json=GOOD)
    assert response.status_code == 200 and response.json()["thinkloop"]["answer"] == "42"


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 400, "invalid_request", "must be a JSON object, got list"),
        (json.dumps({"messages": GOOD["messages"]}).encode(), 400, "invalid_request", "'model' is required"),
        (json.dumps({"model": "mock", "messages": []}).encode(), 400, "invalid_request", "non-empty list"),
        (
            json.dumps({"model": "mock", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            400,
            "invalid_request",
            "messages[0].role must be one of",
        ),
        (
            json.dumps({"model": "mock", "messages": [{"role": "system", "content": "x"}]}).encode(),
            400,
            "invalid_request",
            "no user message",
        ),
        (
            json.dumps(
                {
                    "model": "mock",
                    "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                }
            ).encode(),
            400,
            "invalid_request",
            "only text parts are supported, got 'image_url'",
        ),
        (json.dumps(GOOD | {"n": 3}).encode(), 400, "invalid_request", "'n' must be an integer from 1 to 2"),
        (json.dumps(GOOD | {"n": True}).encode(), 400, "invalid_request", "'n' must be an integer"),
        (json.dumps(GOOD | {"temperature": 9}).encode(), 400, "invalid_request", "'temperature'"),
        (
            json.dumps(GOOD | {"reasoning_effort": "extreme"}).encode(),
            400,
            "invalid_request",
            "none, minimal, low, medium, high",
        ),
        (
            json.dumps(GOOD | {"thinkloop": {"strategy": "magic"}}).encode(),
            400,
            "invalid_strategy",
            "unknown strategy 'magic'",
        ),
        (json.dumps(GOOD | {"thinkloop": {"strategy": "sc:n=0"}}).encode(), 400, "invalid_strategy", "n:"),
        (
            json.dumps(GOOD | {"thinkloop": {"strategy": "sc", "colour": 1}}).encode(),
            400,
            "invalid_request",
            "unknown keys ['colour']",
        ),
        (
            json.dumps(GOOD | {"thinkloop": {"budget": {"tokens": -5}}}).encode(),
            400,
            "invalid_request",
            "'thinkloop.budget.tokens' must be a positive integer",
        ),
        (
            json.dumps(GOOD | {"thinkloop": {"budget": {"dollars": 0.5}}}).encode(),
            400,
            "invalid_request",
            "a dollars budget needs a price for 'mock'",
        ),
        (
            json.dumps(GOOD | {"model": "thinkloop[sc:n=2]/mock", "thinkloop": {"strategy": "cot"}}).encode(),
            400,
            "invalid_request",
            "two strategies chosen",
        ),
        (
            json.dumps(GOOD | {"model": "thinkloop[sc:n=2]", "reasoning_effort": "low"}).encode(),
            400,
            "invalid_request",
            "'reasoning_effort' picks a strategy",
        ),
        (json.dumps(GOOD | {"model": "thinkloop[sc"}).encode(), 400, "invalid_model", "no closing"),
        (json.dumps(GOOD | {"model": "gpt-4o"}).encode(), 404, "model_not_found", "'gpt-4o' is not served here"),
        (json.dumps(GOOD | {"model": "thinkloop[cot]/gpt-4o"}).encode(), 404, "model_not_found", "not served"),
        (
            json.dumps(
                GOOD | {"model": "thinkloop[sc:n=2]", "tools": [{"type": "function", "function": {"name": "f"}}]}
            ).encode(),
            400,
            "unsupported_parameter",
            "'tools' can only pass through",
        ),
        (
            json.dumps(GOOD | {"response_format": {"type": "json_object"}}).encode(),
            400,
            "unsupported_parameter",
            "use the 'direct' strategy",
        ),
        (
            json.dumps(
                {
                    "model": "thinkloop[cot]",
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                            ],
                        },
                        {"role": "tool", "tool_call_id": "c1", "content": "3"},
                    ],
                }
            ).encode(),
            400,
            "unsupported_parameter",
            "tool turns",
        ),
        (b"x" * (CAP + 1), 413, "request_too_large", f"exceeds the limit of {CAP} bytes"),
    ],
)
def test_bad_requests(http: httpx2.Client, body: bytes, status: int, code: str, words: str) -> None:
    error = error_of(http.post("/chat/completions", content=body, headers={"content-type": "application/json"}), status)
    assert error["code"] == code and words in error["message"], error


def test_a_body_over_the_cap_without_content_length_is_refused(http: httpx2.Client) -> None:
    chunks = (b"x" * 1024 for _ in range(8))  # a generator: sent chunked, no Content-Length
    error = error_of(http.post("/chat/completions", content=chunks, headers={"content-type": "application/json"}), 413)
    assert error["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"authorization": "Bearer wrong"}, "invalid_api_key"),
        ({"authorization": KEY}, "invalid_api_key"),
        ({"authorization": f"Basic {KEY}"}, "invalid_api_key"),
    ],
)
@pytest.mark.parametrize("route", ["POST /chat/completions", "GET /models", "GET /traces/abc"])
def test_auth_is_required(serve: ServeProcess, headers: dict, code: str, route: str) -> None:
    method, path = route.split()
    response = httpx2.request(method, serve.url + path, headers=headers, json=GOOD if method == "POST" else None)
    error = error_of(response, 401)
    assert error["code"] == code and error["type"] == "authentication_error"
    assert KEY not in response.text


def test_health_needs_no_key_and_unknown_things_are_404(serve: ServeProcess, http: httpx2.Client) -> None:
    assert httpx2.get(f"{serve.root}/health").status_code == 200
    assert error_of(http.get("/nowhere"), 404)["code"] == "not_found"
    assert error_of(http.get("/traces/000000000000"), 404)["code"] == "trace_not_found"
    assert error_of(http.get("/chat/completions"), 405)["type"] == "invalid_request_error"


def test_past_max_concurrency_is_429_with_retry_after(serve: ServeProcess, http: httpx2.Client) -> None:
    slow = GOOD | {"model": "thinkloop[critique:max_rounds=3]", "stream": True}
    with http.stream("POST", "/chat/completions", json=slow) as first:  # holds the only slot for ~0.7 s
        assert first.status_code == 200
        second = http.post("/chat/completions", json=GOOD)
        error = error_of(second, 429)
        assert second.headers["retry-after"] == "1" and error["code"] == "too_many_runs"
        first.read()
    assert http.post("/chat/completions", json=GOOD).status_code == 200


def test_upstream_429_is_a_429_with_retry_after() -> None:
    with (
        RateLimitedUpstreamProcess() as upstream,
        ServeProcess("--base-url", upstream.base_url, "--model", "mock") as server,
    ):
        for stream in (False, True):
            response = httpx2.post(f"{server.url}/chat/completions", json=GOOD | {"stream": stream}, timeout=60)
            error = error_of(response, 429)
            assert error["code"] == "upstream_rate_limited" and "slow down" in error["message"]
            assert int(response.headers["retry-after"]) >= 1
