"""A client that goes away cancels its run and the run's upstream calls; SIGTERM stops the server cleanly.

The upstream is the mock server at 0.2 s a call; ``critique`` makes its calls one after another, so a run is
many calls long and the mock's request counter shows whether any call was sent after the client left.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx2
import pytest

from serve_support import ServeProcess
from thinkloop.testing import MockConfig, MockServerProcess

LATENCY = 0.2
LONG = {"model": "thinkloop[critique:max_rounds=10]", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
"""21 calls in a row: over four seconds."""


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockConfig(latency=LATENCY, p_right=1.0)) as server:
        yield server


@pytest.fixture(scope="module")
def serve(mock: MockServerProcess) -> Iterator[ServeProcess]:
    with ServeProcess("--base-url", mock.base_url, "--model", "mock", "--log-level", "info") as server:
        yield server


def requests_sent(mock: MockServerProcess) -> int:
    return mock.stats()["requests"]


def assert_no_call_after(mock: MockServerProcess, serve: ServeProcess) -> None:
    time.sleep(2 * LATENCY)  # a call already on its way when the client left may still land
    at_disconnect = requests_sent(mock)
    time.sleep(4 * LATENCY)  # a run still going would have sent two or more calls by now
    assert requests_sent(mock) == at_disconnect <= 3
    assert httpx2.get(f"{serve.root}/health").json()["runs_in_flight"] == 0


def test_streaming_client_disconnect_cancels_the_run(mock: MockServerProcess, serve: ServeProcess) -> None:
    mock.reset()
    with (
        httpx2.Client(timeout=30) as client,
        client.stream("POST", f"{serve.url}/chat/completions", json=LONG | {"stream": True}) as response,
    ):
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert "reasoning_content" in first
    assert_no_call_after(mock, serve)
    assert "cancelled after" in serve.log() and "tokens billed so far" in serve.log()


def test_non_streaming_client_disconnect_cancels_the_run(mock: MockServerProcess, serve: ServeProcess) -> None:
    mock.reset()
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(f"{serve.url}/chat/completions", json=LONG, timeout=httpx2.Timeout(30, read=1.5 * LATENCY))
    assert_no_call_after(mock, serve)


def test_sigterm_gives_runs_a_grace_period_then_cancels_them(mock: MockServerProcess) -> None:
    with (
        ServeProcess("--base-url", mock.base_url, "--model", "mock", "--grace-seconds", "0.5") as server,
        httpx2.Client(timeout=30) as client,
        client.stream("POST", f"{server.url}/chat/completions", json=LONG | {"stream": True}) as response,
    ):
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: "))
        asked = time.perf_counter()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line.startswith("data: ")]  # the stream ends as a stream ends
        code = server.process.wait(timeout=20)
        stopped = time.perf_counter() - asked
        log = server.log()
    assert code == 0
    assert rest[-1] == "data: [DONE]" and "server_shutting_down" in rest[-2]
    assert "Traceback" not in log
    assert stopped < 10 * LATENCY  # the run had about four more seconds to go; it was cancelled after 0.5
    mock.reset()
    time.sleep(2 * LATENCY)
    assert requests_sent(mock) == 0
