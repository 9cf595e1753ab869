"""Bad input gets one clear error naming the problem, and nothing already finished is lost (issue 16's fault
suite): malformed data lines, wrong field names, zero or negative budgets, an unknown strategy or model, and
replies that are not JSON or are empty. The command line runs in-process here (``standalone``), exactly as
``thinkloop bench run`` parses and reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest

from thinkloop import Budget, ChainOfThought, ConfigurationError, OpenAIBackend, ScriptedBackend
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.runner import run_benchmark
from thinkloop.bench.store import read_records
from thinkloop.cli.bench import standalone
from thinkloop.exceptions import ModelNotFound


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    """A results file with work already done in it, which no bad command may touch."""
    out = tmp_path / "results.jsonl"
    data = write(tmp_path / "good.jsonl", [json.dumps({"q": "What is 1 + 1?", "a": 2})])
    assert (
        standalone(
            [
                "run",
                str(data),
                "--question-field",
                "q",
                "--answer-field",
                "a",
                "--strategy",
                "direct",
                "--simulated",
                "1.0",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = standalone(["run", *args, "--quiet"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "fields", "message"),
    [
        (
            ['{"q": "1 + 1?", "a": 2}', '{"q": "2 + 2?", "a": 4', '{"q": "3 + 3?", "a": 6}'],
            ["q", "a"],
            "bad.jsonl:2: malformed JSON",
        ),
        (['{"q": "1 + 1?", "a": 2}', "[1, 2]"], ["q", "a"], "bad.jsonl:2: expected a JSON object, got list"),
        (['{"q": "1 + 1?", "a": 2}'], ["q", "answr"], "bad.jsonl:1: missing field 'answr'"),
        (['{"q": "1 + 1?", "a": 2}'], ["question", "a"], "bad.jsonl:1: missing field 'question'"),
        (['{"q": "1 + 1?", "a": null}'], ["q", "a"], "bad.jsonl:1: field 'a' is null"),
    ],
    ids=["torn-json", "not-an-object", "wrong-answer-field", "wrong-question-field", "null-answer"],
)
def test_a_bad_data_line_is_one_line_naming_file_line_and_field(
    lines: list[str],
    fields: list[str],
    message: str,
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = finished.read_bytes()
    data = write(tmp_path / "bad.jsonl", lines)
    code, err = run_cli(
        capsys,
        str(data),
        "--question-field",
        fields[0],
        "--answer-field",
        fields[1],
        "--strategy",
        "direct",
        "--simulated",
        "1.0",
        "--out",
        str(finished),
    )
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("thinkloop bench: error: ")
    assert message in err, err
    assert finished.read_bytes() == before


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--budget-tokens", "0"),
        ("--budget-tokens", "-5"),
        ("--max-tokens", "0"),
        ("--concurrency", "-1"),
        ("--limit", "0"),
    ],
)
def test_a_zero_or_negative_limit_is_one_line(
    flag: str, value: str, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = finished.read_bytes()
    code, err = run_cli(
        capsys, "simulated", "--simulated", "0.5", "--strategy", "direct", flag, value, "--out", str(finished)
    )
    assert (code, err) == (1, f"thinkloop bench: error: {flag} must be at least 1, got {value}\n")
    assert finished.read_bytes() == before


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"tokens": 0}, "tokens"),
        ({"tokens": -5}, "tokens"),
        ({"seconds": 0}, "seconds"),
        ({"calls": -1}, "calls"),
        ({"seconds": -0.5}, "seconds"),
    ],
)
def test_a_zero_or_negative_budget_is_refused_before_any_call(limits: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Budget.make(**limits)
    assert "\n" not in str(raised.value) and field in str(raised.value)
    with pytest.raises(ValueError, match=field):
        Budget(**limits)  # type: ignore[arg-type]


def test_an_unknown_strategy_is_one_line_and_nothing_is_lost(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = finished.read_bytes()
    code, err = run_cli(
        capsys,
        "simulated",
        "--simulated",
        "0.5",
        "--strategy",
        "direct",
        "--strategy",
        "majority:n=3",
        "--out",
        str(finished),
    )
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("thinkloop bench: error: unknown strategy 'majority'")
    assert finished.read_bytes() == before


def test_an_unknown_embedded_model_file_is_one_line(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.backends.llamacpp import LlamaCppBackend

    with pytest.raises(ModelNotFound, match=re.escape("nope.gguf")):
        LlamaCppBackend("nope.gguf")


# --- replies a server should not send -------------------------------------------------------------------


def good_then(status: int, body: bytes, content_type: str) -> OpenAIBackend:
    """A server whose first reply is a proper completion and every later one is ``body``."""
    replies = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal replies
        replies += 1
        if replies == 1:
            return httpx2.Response(
                200,
                json={
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "gpt-4o-mini",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "Answer: 1"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                },
            )
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    return OpenAIBackend(
        "gpt-4o-mini",
        api_key="sk-test-bad-input-000000",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


def toy(*ids: str) -> Dataset:
    problems = tuple(
        Problem(id=i, question=f"What is {n} + 1?", answer=str(n + 1), line=n + 1) for n, i in enumerate(ids)
    )
    return Dataset(name="toy", path=Path("toy.jsonl"), problems=problems)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "content_type", "names"),
    [
        (200, b"<html><body>502 Bad Gateway</body></html>", "text/html", "not a chat completion"),
        (200, b"", "application/json", "not a chat completion"),
        (200, b'{"id": "x", "object": "chat.completion"}', "application/json", "not a chat completion"),
        (200, b'{"choices": "none"}', "application/json", "not a chat completion"),
    ],
    ids=["html", "empty-body", "no-choices", "choices-not-a-list"],
)
async def test_a_reply_that_is_not_a_completion_is_a_failure_naming_it(
    status: int, body: bytes, content_type: str, names: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    backend = good_then(status, body, content_type)
    done = await run_benchmark([toy("p1")], ["direct"], [backend], out)
    assert done.correct == 1
    summary = await run_benchmark([toy("p1", "p2")], ["direct"], [backend], out)
    await backend.aclose()
    assert (summary.ran, summary.skipped, summary.failed) == (1, 1, 1)  # p1 was finished and stays so
    first, second = read_records(out)
    assert (first.id, first.status, first.correct) == ("p1", "done", True)
    assert (second.id, second.status, second.correct) == ("p2", "failed", None)  # a failure, not a wrong answer
    assert names in (second.error or "") and "\n" not in (second.error or "")


@pytest.mark.anyio
async def test_an_empty_answer_is_no_answer_not_a_failure() -> None:
    result = await ChainOfThought().run("q", backend=ScriptedBackend([""]))
    assert result.answer is None and result.stop_reason != "error"


@pytest.mark.anyio
async def test_an_unknown_model_at_a_server_stops_the_run_with_one_error(tmp_path: Path) -> None:
    def not_found(request: httpx2.Request) -> httpx2.Response:
        body = {"error": {"message": "The model `nope` does not exist", "type": "invalid_request_error"}}
        return httpx2.Response(404, json=body)

    backend = OpenAIBackend(
        "nope",
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(not_found)),
    )
    out = tmp_path / "r.jsonl"
    with pytest.raises(ModelNotFound) as raised:
        await run_benchmark([toy(*(f"p{i}" for i in range(20)))], ["direct"], [backend], out)
    await backend.aclose()
    message = str(raised.value)
    assert message.startswith("stopped: 5 problems in a row found no such model at nope at http://127.0.0.1:9/v1")
    assert "model 'nope' not found" in message and "\n" not in message
    assert not out.exists() or read_records(out) == []  # no failure written: the same command runs them again
