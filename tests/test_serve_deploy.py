"""``thinkloop serve`` as an operator and an attacker meet it (issue 24): each finding of the issue, through
the real ``openai`` SDK or raw HTTP against the real uvicorn process.

The upstream is :class:`serve_support.ScriptedUpstream`: the question's first word picks its behaviour, and a
normal reply repeats the body it was sent, so a test reads exactly what reached the upstream.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from serve_support import ScriptedUpstreamProcess, ServeProcess, ask, sdk_client

TOKENS = 2000
SECONDS = 3


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstreamProcess]:
    with ScriptedUpstreamProcess() as server:
        yield server


@pytest.fixture(scope="module")
def serve(upstream: ScriptedUpstreamProcess) -> Iterator[ServeProcess]:
    with ServeProcess(
        "--base-url",
        upstream.base_url,
        "--model",
        "mock",
        "--max-request-tokens",
        str(TOKENS),
        "--max-request-seconds",
        str(SECONDS),
        "--max-request-calls",
        "64",
        "--max-concurrency",
        "4",
        "--header-seconds",
        "1",
        "--body-seconds",
        "1",
    ) as server:
        yield server


@pytest.fixture
def client(serve: ServeProcess) -> Iterator[openai.OpenAI]:
    with sdk_client(serve) as client:
        yield client


def sent(content: str) -> dict:
    """The body the upstream was sent, from the first line of its reply."""
    return json.loads(content.splitlines()[0].removeprefix("sent: "))


# --- the operator decides the ceiling ---------------------------------------------------------------------
def test_a_client_budget_is_clamped_to_the_ceiling_and_said_so(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="mock", messages=ask(), extra_body={"thinkloop": {"budget": {"tokens": 10**15}}}
    )
    info = reply.thinkloop  # type: ignore[attr-defined]
    assert info["budget"]["tokens"] == TOKENS and info["budget"]["seconds"] == SECONDS
    assert "--max-request-tokens" in info["changed"]["thinkloop.budget.tokens"]


def test_a_huge_max_tokens_never_reaches_the_upstream(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="thinkloop[direct]", messages=ask(), max_tokens=10**30)
    assert sent(reply.choices[0].message.content)["max_tokens"] < TOKENS
    assert "max_tokens" in reply.thinkloop["changed"]  # type: ignore[attr-defined]


def test_n_runs_share_the_ceiling(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="thinkloop[direct]", messages=ask(), n=4)
    assert reply.thinkloop["budget"]["tokens"] == TOKENS // 4  # type: ignore[attr-defined]


def test_a_nested_strategy_past_the_ceiling_is_refused_before_any_call(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="mock", messages=ask(), extra_body={"thinkloop": {"strategy": "sc:n=128,inner='sc:n=128'"}}
        )
    assert "16384 model samples" in str(caught.value) and "--max-request-calls" in str(caught.value)


def test_a_hung_upstream_is_cut_at_the_requests_seconds(client: openai.OpenAI) -> None:
    started = time.perf_counter()
    reply = client.chat.completions.create(model="thinkloop[direct]", messages=ask("HANG please"))
    assert time.perf_counter() - started < SECONDS + 5
    assert reply.thinkloop["stop_reason"] == "deadline" and reply.choices[0].finish_reason == "length"  # type: ignore[attr-defined]


# --- safe on a shared machine --------------------------------------------------------------------------
def test_a_body_that_is_not_declared_json_is_refused(serve: ServeProcess) -> None:
    body = json.dumps({"model": "mock", "messages": ask()})
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": kind} if kind else {}
        response = httpx2.post(f"{serve.url}/chat/completions", content=body, headers=headers)
        assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"


def test_a_foreign_host_header_is_refused_on_loopback(serve: ServeProcess) -> None:
    port = serve.url.split(":")[2].split("/")[0]
    assert httpx2.get(f"{serve.url}/models", headers={"host": "evil.example"}).status_code == 403
    assert httpx2.get(f"{serve.url}/models", headers={"host": f"evil.example:{port}"}).status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx2.get(f"{serve.url}/models", headers={"host": host}).status_code == 200


def test_credentials_in_the_upstream_url_are_never_shown() -> None:
    with ServeProcess("--base-url", "http://alice:hunter2secret@127.0.0.1:9/v1", "--model", "mock") as server:
        response = httpx2.post(f"{server.url}/chat/completions", json={"model": "mock", "messages": ask()}, timeout=30)
        log = server.log()
    assert response.status_code == 502 and "cannot reach" in response.text
    assert "hunter2secret" not in response.text and "hunter2secret" not in log and "alice" not in response.text


def _open(serve: ServeProcess) -> socket.socket:
    host, port = serve.url.split("//")[1].split("/")[0].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_trickling_header_connection_is_closed(serve: ServeProcess) -> None:
    with _open(serve) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n")
        started = time.perf_counter()
        closed = False
        while time.perf_counter() - started < 8:
            try:
                sock.sendall(b"X-a: b\r\n")
            except OSError:
                closed = True
                break
            sock.settimeout(0.3)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
    assert closed and time.perf_counter() - started < 5


def test_a_trickling_body_gets_408(serve: ServeProcess) -> None:
    with _open(serve) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n{"
        )
        sock.settimeout(6)
        reply = b""
        while b"request_timeout" not in reply and (chunk := sock.recv(4096)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply


def test_idle_connections_do_not_starve_health(serve: ServeProcess) -> None:
    idle = [_open(serve) for _ in range(50)]
    try:
        assert httpx2.get(f"{serve.root}/health").status_code == 200
    finally:
        for sock in idle:
            sock.close()


# --- faithful to the request ---------------------------------------------------------------------------
def test_direct_sends_no_limit_of_its_own_and_passes_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="thinkloop[direct]", messages=ask("LOGPROBS please"), logprobs=True, top_logprobs=2
    )
    body = sent(reply.choices[0].message.content)
    assert body["max_tokens"] != 512 and body["logprobs"] is True and body["top_logprobs"] == 2
    assert "the server's limit" in reply.thinkloop["changed"]["max_tokens"]  # type: ignore[attr-defined]
    assert reply.choices[0].logprobs.content[0].token == "42"


def test_max_completion_tokens_bounds_the_whole_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="thinkloop[sc:n=4]", messages=ask(), max_completion_tokens=40)
    assert reply.usage.completion_tokens <= 40


def test_a_null_max_completion_tokens_does_not_hide_max_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="thinkloop[direct]", messages=ask(), max_tokens=7, extra_body={"max_completion_tokens": None}
    )
    assert sent(reply.choices[0].message.content)["max_tokens"] == 7


def test_an_upstream_400_stays_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.chat.completions.create(model="thinkloop[direct]", messages=ask("CTX400 please"))


def test_retry_after_inf_is_a_429_with_a_number(serve: ServeProcess) -> None:
    response = httpx2.post(
        f"{serve.url}/chat/completions",
        timeout=30,
        json={"model": "thinkloop[direct]", "messages": ask("RETRYINF please")},
    )
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1


def test_a_deeply_nested_body_is_a_400(serve: ServeProcess) -> None:
    body = '{"model": "mock", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx2.post(f"{serve.url}/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_n_above_max_concurrency_is_a_400_that_says_why(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="--max-concurrency"):
        client.chat.completions.create(model="thinkloop[direct]", messages=ask(), n=5)


def test_an_answerless_vote_is_a_200_with_the_reply_and_a_warning(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="thinkloop[sc:n=3]", messages=ask("NOANSWER please"))
    assert reply.choices[0].message.content == "I would rather not say."
    assert reply.thinkloop["warnings"] and reply.thinkloop["answer"] is None  # type: ignore[attr-defined]


def test_upstream_thinking_is_shown_and_cot_does_not_repeat_its_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="thinkloop[cot]", messages=ask("THINK please"))
    message = reply.choices[0].message
    reasoning = message.reasoning_content  # type: ignore[attr-defined]
    assert "First I add the tens, then the ones." in reasoning
    assert "The sum is 42." not in reasoning and "The sum is 42." in message.content


def test_a_tool_call_reply_has_null_content(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
    reply = client.chat.completions.create(model="thinkloop[direct]", messages=ask("TOOL please"), tools=tools)
    assert reply.choices[0].message.content is None and reply.choices[0].finish_reason == "tool_calls"
    stream = client.chat.completions.create(
        model="thinkloop[direct]", messages=ask("TOOL please"), tools=tools, stream=True
    )
    contents = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert contents == [None]


def test_models_retrieve_and_the_401_hint() -> None:
    with ServeProcess("--base-url", "http://127.0.0.1:9/v1", "--model", "mock", "--api-key", "k-123456") as server:
        with openai.OpenAI(base_url=server.url, api_key="k-123456", max_retries=0) as client:
            assert client.models.retrieve("thinkloop").id == "thinkloop"
            assert client.models.retrieve("mock").id == "mock"
            with pytest.raises(openai.NotFoundError):
                client.models.retrieve("gpt-4o")
        response = httpx2.get(f"{server.url}/models")
    assert response.json()["error"]["message"] == "missing API key: send 'Authorization: Bearer <key>'"


def test_serve_takes_api_key_env(upstream: ScriptedUpstreamProcess) -> None:
    env = dict(os.environ, MY_UPSTREAM_KEY="sk-upstream-secret-123456")
    with ServeProcess(
        "--base-url", upstream.base_url, "--model", "mock", "--api-key-env", "MY_UPSTREAM_KEY", env=env
    ) as server:
        response = httpx2.post(f"{server.url}/chat/completions", json={"model": "mock", "messages": ask()}, timeout=30)
    assert response.status_code == 200


# --- named keys with allowances, kept across restarts ----------------------------------------------------
def test_named_keys_spend_an_allowance_that_survives_a_restart(
    upstream: ScriptedUpstreamProcess,
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    keys = str(tmp_path / "keys.sqlite")
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkloop",
            "serve",
            "--keys",
            keys,
            "--add-key",
            "ana",
            "--key-tokens",
            "100",
            "--key-period",
            "day",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    key = add.stdout.strip()
    assert key.startswith("tlk-") and key not in Path(keys).read_bytes().decode(errors="replace")
    with (
        ServeProcess("--base-url", upstream.base_url, "--model", "mock", "--keys", keys) as server,
        openai.OpenAI(base_url=server.url, api_key=key, max_retries=0) as client,
    ):
        reply = client.chat.completions.create(model="thinkloop[direct]", messages=ask(), max_tokens=40)
        assert reply.thinkloop["budget"]["tokens"] <= 100  # type: ignore[attr-defined]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0).models.list()
    listed = subprocess.run(
        [sys.executable, "-m", "thinkloop", "serve", "--keys", keys, "--list-keys"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"ana\t100 tokens per 86400 s\t{reply.usage.total_tokens} spent" in listed
    with (
        ServeProcess("--base-url", upstream.base_url, "--model", "mock", "--keys", keys) as server,
        openai.OpenAI(base_url=server.url, api_key=key, max_retries=0) as client,
        pytest.raises(openai.RateLimitError, match="allowance"),
    ):  # 50 of 100 are left: too few for a call
        client.chat.completions.create(model="thinkloop[direct]", messages=ask(), max_tokens=40)


def test_workers_share_one_port_and_every_trace(upstream: ScriptedUpstreamProcess) -> None:
    with (
        ServeProcess("--base-url", upstream.base_url, "--model", "mock", "--workers", "2") as server,
        openai.OpenAI(base_url=server.url, api_key="unused", max_retries=3) as client,
    ):
        run_ids = [
            client.chat.completions.create(model="thinkloop[direct]", messages=ask()).thinkloop["run_id"]  # type: ignore[attr-defined]
            for _ in range(6)
        ]
        for run_id in run_ids:  # whichever worker answers, it finds the trace
            for _ in range(3):
                assert httpx2.get(f"{server.url}/traces/{run_id}").status_code == 200
