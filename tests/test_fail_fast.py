"""Failing fast (issue 25): sane default timeouts, ``ask`` against a server that takes the connection and never
answers fails in seconds, and ``bench run`` checks each server before the grid, stopping on a dead, hung or
unauthorised one with one line naming the cause.

Before: ``ask`` waited 90 s and more (600 s read timeout, retried), ``bench`` 150 s; a blackholed host let
``bench`` run on with 0 records; a wrong key recorded every problem as failed without naming the 401.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from test_bench_faults import bench_command, sums
from thinkloop import Budget, Direct, OpenAIBackend
from thinkloop.bench.store import read_records
from thinkloop.cli.backends import make_backend
from thinkloop.exceptions import Unauthorized
from thinkloop.testing.faults import FaultyServerProcess, serve_faulty
from thinkloop.testing.mock_server import MockConfig


@contextmanager
def silent_server() -> Iterator[str]:
    """A port that takes connections (the kernel's backlog) and never answers: a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        listener.close()


def test_the_default_timeouts_connect_in_10_s_and_read_far_below_600_s() -> None:
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    timeout = backend._client.timeout
    assert isinstance(timeout, httpx2.Timeout)
    assert timeout.connect == 10.0 and timeout.read is not None and timeout.read <= 120.0
    assert backend.probe_timeout == 10.0
    custom = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", timeout=3.0)
    assert custom.probe_timeout == 3.0  # overridable, and the check never waits longer than a call would


@pytest.mark.anyio
async def test_ask_against_a_server_that_never_answers_fails_in_seconds() -> None:
    with silent_server() as url:
        backend = make_backend(url, "m")  # what ``thinkloop ask --base-url`` builds
        assert isinstance(backend, OpenAIBackend) and backend.check_server_first
        backend.probe_timeout = 1.0  # 10 s by default; the same path, shorter
        started = time.monotonic()
        async with backend:
            result = await Direct(max_tokens=16).run("What is 2 + 2?", backend=backend, budget=Budget(tokens=500))
        elapsed = time.monotonic() - started
    assert result.answer is None and result.stop_reason == "error"
    assert "did not answer GET /models within 1 s" in (result.error or "")
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert result.usage.calls_without_usage == 0  # nothing was generated, so nothing is billed


@pytest.mark.anyio
async def test_a_refused_key_is_one_clear_error_naming_the_401() -> None:
    async with serve_faulty(MockConfig(), api_key="sk-right-key-0000") as server:
        backend = OpenAIBackend("mock", base_url=server.base_url, api_key="sk-wrong-key-0000", check_server=True)
        async with backend:
            with pytest.raises(Unauthorized, match="401"):
                await backend.check_server()
            result = await Direct(max_tokens=16).run("q", backend=backend, budget=Budget(tokens=500))
        assert server.stats.requests == 0
    assert "401" in (result.error or "") and "sk-wrong" not in (result.error or "")


def test_bench_stops_before_the_grid_on_a_server_that_never_answers(tmp_path: Path) -> None:
    data, out = sums(tmp_path / "sums.jsonl", 30), tmp_path / "r.jsonl"
    with silent_server() as url:
        started = time.monotonic()
        run = subprocess.run(
            bench_command(data, out, url, "--timeout", "1"), capture_output=True, text=True, timeout=60
        )
        elapsed = time.monotonic() - started
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"thinkloop bench: error: stopped before the first problem: mock at {url}")
    assert "took the connection but did not answer" in lines[0]
    assert read_records(out) == []
    assert elapsed < 20, f"took {elapsed:.0f} s"


def test_bench_stops_before_the_grid_on_a_refused_key_naming_the_401(tmp_path: Path) -> None:
    data, out = sums(tmp_path / "sums.jsonl", 30), tmp_path / "r.jsonl"
    env = dict(os.environ, OPENAI_API_KEY="sk-wrong-key-0000")
    with FaultyServerProcess(MockConfig(), api_key="sk-right-key-0000") as server:
        run = subprocess.run(
            bench_command(data, out, server.base_url), capture_output=True, text=True, timeout=60, env=env
        )
        requests = server.stats()["requests"]
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "401" in lines[0] and "refused" in lines[0], run.stderr
    assert "sk-wrong" not in run.stderr
    assert read_records(out) == [] and requests == 0
