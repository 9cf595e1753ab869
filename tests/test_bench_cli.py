"""``thinkloop bench run`` against OpenAI-compatible servers (the project's mock server), as a user runs it:
model/base-url pairs, records per model, a table at the end, and a re-run that skips everything."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from thinkloop.bench.store import read_records
from thinkloop.testing.mock_server import MockConfig, MockServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockConfig(p_right=1.0, model="mock")) as process:
        yield process


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thinkloop", "bench", *args], capture_output=True, text=True, timeout=120
    )


def test_a_grid_over_two_served_models_resumes_to_nothing(server: MockServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"n": i, "q": f"What is {i} + 30?", "a": i + 30}) + "\n" for i in range(3)))
    out = tmp_path / "r.jsonl"
    args = [
        str(data),
        "--question-field",
        "q",
        "--answer-field",
        "a",
        "--id-field",
        "n",
        "--strategy",
        "direct",
        "--strategy",
        "sc:n=3",
        "--model",
        "mock",
        "--model",
        "mock-b",
        "--base-url",
        server.base_url,
        "--concurrency",
        "2",
        "--out",
        str(out),
    ]
    first = bench("run", *args)
    assert first.returncode == 0, first.stderr
    assert "ran 12, skipped 0 already recorded, failed 0" in first.stderr
    records = read_records(out)
    grid = {(s, m) for s in ("direct", "sc:n=3") for m in ("mock", "mock-b")}
    assert {(r.strategy, r.model) for r in records} == grid
    assert all(r.correct and r.status == "done" for r in records)
    assert {r.k for r in records if r.strategy == "sc:n=3"} == {3}

    again = bench("run", *args)
    assert again.returncode == 0 and "ran 0, skipped 12 already recorded" in again.stderr
    assert len(read_records(out)) == 12


def test_mismatched_models_and_urls_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "1 + 1?", "a": 2}\n')
    result = bench(
        "run",
        str(data),
        "--question-field",
        "q",
        "--answer-field",
        "a",
        "--strategy",
        "direct",
        "--model",
        "a",
        "--model",
        "b",
        "--model",
        "c",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--out",
        str(tmp_path / "r.jsonl"),
    )
    assert (result.returncode, result.stderr) == (
        1,
        "thinkloop bench: error: 3 --model but 2 --base-url: give one, or one each\n",
    )


def test_an_unknown_strategy_is_one_line_before_any_call(tmp_path: Path) -> None:
    result = bench(
        "run",
        "simulated",
        "--simulated",
        "0.5",
        "--limit",
        "3",
        "--strategy",
        "nope",
        "--out",
        str(tmp_path / "r.jsonl"),
    )
    assert result.returncode == 1
    assert result.stderr.startswith("thinkloop bench: error: unknown strategy 'nope'; known strategies: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--strategy", "tree:max_tokens=128", "--max-tokens", "64"],
            "thinkloop bench: error: tree: the spec sets max_tokens=128 but --max-tokens 64 is given too; give it once",
        ),
        (
            ["--strategy", "critique:critic=verifier"],
            "thinkloop bench: error: critique:critic=verifier: critic=verifier needs a verifier, and bench run gives "
            "none; leave it at auto",
        ),
        (["--strategy", "sc:n=yes"], "thinkloop bench: error: sc: option 'n' expects an integer, got 'yes'"),
    ],
)
def test_a_spec_bench_cannot_serve_is_one_line_before_any_call(args: list[str], expected: str, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = bench("run", "simulated", "--simulated", "0.5", "--limit", "2", *args, "--out", str(out))
    assert (result.returncode, result.stderr) == (1, expected + "\n")
    assert not out.exists() or out.read_text() == ""


def test_the_progress_lines_name_the_strategy_as_typed(tmp_path: Path) -> None:
    result = bench(
        "run",
        "simulated",
        "--simulated",
        "0.5",
        "--limit",
        "10",
        "--strategy",
        "sc:n=3,adaptive=true",
        "--out",
        str(tmp_path / "r.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    assert "[10/10] sc:n=3,adaptive=true on simulated(p=0.5): accuracy so far" in result.stderr


@pytest.mark.integration
def test_a_gguf_file_runs_in_process_as_ask_runs_it(tmp_path: Path) -> None:
    from thinkloop.backends.llamacpp import default_model_path

    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "What is 1 + 1?", "a": 2}\n')
    result = bench(
        "run",
        str(data),
        "--question-field",
        "q",
        "--answer-field",
        "a",
        "--strategy",
        "direct",
        "--max-tokens",
        "8",
        "--model",
        str(default_model_path()),
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "r.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    (record,) = read_records(tmp_path / "r.jsonl")
    assert record.status == "done" and record.model == default_model_path().name.removesuffix(".gguf")
