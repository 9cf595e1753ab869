"""The llama.cpp server killed in the middle of ``thinkloop bench run``: the problems it took down are recorded
as failed (never wrong), the command exits non-zero with a summary, and ``--retry-failed`` completes them once
the server is back (issue 16's fault suite). The server is the one :class:`ManagedLlamaServer` runs, started on
a fixed port so that it can come back at the same address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from thinkloop.backends.llamacpp import DEFAULT_MODEL_NAME
from thinkloop.backends.server import ManagedLlamaServer, free_port
from thinkloop.bench.store import latest, read_records

pytestmark = pytest.mark.integration


@contextmanager
def llama_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """llama-cpp-python's server with the command line the managed server uses, on ``port``."""
    command = ManagedLlamaServer(ctx=512, n_threads=1).command(port)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "the llama.cpp server exited while starting"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the llama.cpp server did not start"
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_killed_server_fails_its_problems_and_retry_failed_completes_them(tmp_path: Path) -> None:
    data, out = tmp_path / "sums.jsonl", tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps({"id": f"s{i}", "q": f"What is {i} + 2?", "a": i + 2}) + "\n" for i in range(4)))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "thinkloop",
        "bench",
        "run",
        str(data),
        "--question-field",
        "q",
        "--answer-field",
        "a",
        "--id-field",
        "id",
        "--strategy",
        "direct",
        "--max-tokens",
        "48",
        "--model",
        DEFAULT_MODEL_NAME,
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--out",
        str(out),
        "--quiet",
    ]
    with llama_server(port) as server:
        bench = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while bench.poll() is None and time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-run: one problem recorded, the rest not yet
        _, stderr = bench.communicate(timeout=120)
    assert bench.returncode == 1, stderr
    summary = stderr.strip().splitlines()[-1]
    assert summary.startswith("ran 4, skipped 0 already recorded, failed "), stderr
    assert "re-run with --retry-failed to redo the failed ones" in summary
    records = read_records(out)
    failed = [r for r in records if r.status == "failed"]
    assert len(records) == 4 and 1 <= len(failed) <= 3
    assert all(r.correct is None and "cannot reach" in (r.error or "") for r in failed)

    with llama_server(port):
        retried = subprocess.run([*command, "--retry-failed"], capture_output=True, text=True, timeout=180)
    assert retried.returncode == 0, retried.stderr
    final = latest(read_records(out))
    assert sorted(r.id for r in final.values()) == ["s0", "s1", "s2", "s3"]
    assert {r.status for r in final.values()} == {"done"}
