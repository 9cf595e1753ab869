"""The ``thinkloop`` command: answers, accounts, JSON, and one clear stderr line for every user error."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from thinkloop.cli import main
from thinkloop.runtime.trace import load_trace
from thinkloop.testing.mock_server import MockConfig, MockServerProcess

UNREACHABLE = "http://127.0.0.1:9/v1"


def thinkloop(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "thinkloop", *args], capture_output=True, text=True, timeout=timeout
    )


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServerProcess]:
    """An OpenAI-compatible server that always answers sums right."""
    with MockServerProcess(MockConfig(p_right=1.0, model="mock")) as server:
        yield server


# --- errors: one line, non-zero, never a traceback ------------------------------------------------------
def test_an_unreachable_base_url_is_one_line_naming_the_url() -> None:
    result = thinkloop("ask", "What is 12 + 30?", "--base-url", UNREACHABLE, "--model", "m")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("thinkloop: error: cannot reach http://127.0.0.1:9/v1")
    assert result.stdout == ""


def test_a_bad_flag_is_one_line_naming_the_flag() -> None:
    result = thinkloop("ask", "q", "--bogus")
    assert result.returncode == 2
    assert one_line(result.stderr) == "thinkloop: error: unrecognized arguments: --bogus"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ask", "q", "--budget-tokens", "many"],
         "thinkloop ask: error: argument --budget-tokens: expected a positive integer, got 'many'"),
        (["ask", "q", "--max-tokens", "0"],
         "thinkloop ask: error: argument --max-tokens: expected a positive integer, got 0"),
        (["ask"], "thinkloop ask: error: the following arguments are required: question"),
        (["ask", "q", "--base-url", UNREACHABLE],
         f"thinkloop ask: error: --base-url needs --model NAME (the model's name at {UNREACHABLE})"),
        (["frobnicate"], "thinkloop: error: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert one_line(captured.err).startswith(expected)
    assert captured.out == ""


def test_an_unknown_strategy_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--strategy", "magic:n=3"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thinkloop: error: unknown strategy 'magic'; known strategies: ")


def test_a_bad_strategy_option_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--strategy", "cot:wings=2"]) == 1
    assert "unknown option 'wings'" in one_line(capsys.readouterr().err)


def test_a_missing_model_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.gguf"
    assert main(["ask", "q", "--model", str(missing)]) == 1
    assert one_line(capsys.readouterr().err) == f"thinkloop: error: model file not found: {missing}"


def test_a_missing_key_for_the_openai_api_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert main(["ask", "q", "--model", "gpt-4o-mini"]) == 1
    assert "OPENAI_API_KEY" in one_line(capsys.readouterr().err)


def test_help_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "ask" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage: thinkloop" in capsys.readouterr().err


# --- answers from an OpenAI-compatible server ----------------------------------------------------------
def test_ask_prints_the_answer_and_a_one_line_account(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "What is 12 + 30?", "--base-url", mock_server.base_url, "--model", "mock"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert "The answer is 42." in captured.out
    assert "Answer: 42" in lines
    account = lines[-1]
    assert account.startswith("1 call · ")
    assert "tokens (" in account and " s · stop: completed · mock" in account
    assert captured.err == ""


def test_ask_json_prints_the_whole_result_and_writes_the_trace(
    mock_server: MockServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "run.jsonl"
    code = main([
        "ask", "What is 2 + 3?", "--base-url", mock_server.base_url, "--model", "mock",
        "--strategy", "sc:n=3", "--max-tokens", "64", "--budget-tokens", "5000", "--json", "--trace", str(trace),
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["answer"] == "5"
    assert result["strategy"].startswith("sc")
    assert result["usage"]["calls"] >= 1
    assert result["usage"]["prompt_tokens"] > 0
    assert result["trace_path"] == str(trace)
    assert {node["id"] for node in result["graph"]["nodes"]}
    events = load_trace(trace)
    assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
    requests = [e.node.request for e in events if e.kind == "node" and e.node.request is not None]
    assert requests and all(r.max_tokens is not None and r.max_tokens <= 64 for r in requests)


def test_a_budget_too_small_for_any_call_is_one_line(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "What is 2 + 3?", "--base-url", mock_server.base_url, "--model", "mock",
                 "--budget-tokens", "5"])
    assert code == 1
    assert "stop: budget" in one_line(capsys.readouterr().err)


# --- the embedded model -------------------------------------------------------------------------------
@pytest.mark.integration
def test_ask_answers_with_the_embedded_model() -> None:
    result = thinkloop("ask", "What is 12 + 30?", "--max-tokens", "48", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2 and lines[0].strip()
    assert lines[-1].startswith("1 call · ")
    assert "SmolLM2-135M-Instruct" in lines[-1]
    assert result.stderr == ""
