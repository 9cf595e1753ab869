"""A fake API key under forced 401 and 500 errors, with every logger at DEBUG (the SDK's and httpx2's
included): the key is found nowhere, not in a trace, a result, a results file, a log record, an exception's
text or a repr (issue 16's fault suite). The SDK is real; only its transport is a mock."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx2
import pytest

from thinkloop import Budget, ChainOfThought, OpenAIBackend, SelfConsistency
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.runner import run_benchmark
from thinkloop.types import ChatRequest, Message

pytestmark = pytest.mark.anyio

KEYS = ["sk-proj-FAKEfake0123456789abcdefFAKE", "plainkey1234567890secret"]


def failing(statuses: list[int], *, echo: bool) -> httpx2.MockTransport:
    """Answers each request with the next status (the last one repeats); the body may echo the header."""
    calls = iter(statuses)
    last = statuses[-1]

    def handler(request: httpx2.Request) -> httpx2.Response:
        status = next(calls, last)
        said = request.headers.get("authorization", "") if echo else "no"
        body = {"error": {"message": f"failed ({said})", "type": "server_error"}}
        return httpx2.Response(status, json=body, headers={"retry-after-ms": "5"})  # quick retries

    return httpx2.MockTransport(handler)


def backend(key: str, statuses: list[int], *, echo: bool = False) -> OpenAIBackend:
    return OpenAIBackend(
        "gpt-4o-mini",
        api_key=key,
        max_retries=2,
        http_client=httpx2.AsyncClient(transport=failing(statuses, echo=echo)),
    )


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpx", "httpcore", "thinkloop"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Messages with their arguments, and the arguments' reprs (a formatter may show either)."""
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.args:
            parts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("statuses", [[500, 500, 401], [401], [500]], ids=["500-then-401", "401", "500s"])
async def test_the_key_is_nowhere_after_failed_calls(
    key: str, statuses: list[int], debug_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    model = backend(key, statuses)
    trace = tmp_path / "trace.jsonl"
    result = await SelfConsistency(n=2).run("q", backend=model, budget=Budget(tokens=5_000), trace_path=trace)
    assert result.stop_reason == "error" and result.error
    with pytest.raises(Exception) as raised:
        await model.complete(ChatRequest(messages=(Message(role="user", content="q"),)))
    error = raised.value
    chain = []
    cause: BaseException | None = error
    while cause is not None:
        chain += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    found_in = {
        "trace": key in trace.read_text(),
        "result": key in result.model_dump_json() or key in repr(result),
        "exception": any(key in text for text in chain),
        "repr": key in repr(model) or key in str(model),
        "logs": key in everything_logged(debug_logs) or key in debug_logs.text,
    }
    assert not any(found_in.values()), found_in
    assert debug_logs.records, "debug logging was on: the SDK logged its requests"
    await model.aclose()


async def test_the_key_is_not_in_a_results_file(debug_logs: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    key = KEYS[0]
    model = backend(key, [500, 500, 401])
    problems = (Problem(id="p1", question="What is 2 + 2?", answer="4", line=1),)
    out = tmp_path / "results.jsonl"
    summary = await run_benchmark(
        [Dataset(name="toy", path=Path("toy.jsonl"), problems=problems)],
        ["direct"],
        [model],
        out,
        traces_dir=tmp_path / "traces",
    )
    assert summary.failed == 1
    files = [out, *sorted((tmp_path / "traces").rglob("*.jsonl"))]
    assert [p.name for p in files if key in p.read_text()] == []
    assert key not in everything_logged(debug_logs)
    await model.aclose()


async def test_a_chain_of_thought_run_keeps_the_key_out_of_its_error(tmp_path: Path) -> None:
    key = KEYS[1]
    model = backend(key, [401], echo=True)
    result = await ChainOfThought().run("q", backend=model, trace_path=tmp_path / "t.jsonl")
    assert result.stop_reason == "error" and "401" in (result.error or "")
    assert key not in (result.error or "") and key not in (tmp_path / "t.jsonl").read_text()
    await model.aclose()


@pytest.mark.parametrize("key", KEYS)
async def test_a_key_the_server_echoes_is_scrubbed_from_traces_results_and_logs(
    key: str, debug_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    model = backend(key, [500, 401], echo=True)
    trace = tmp_path / "trace.jsonl"
    result = await ChainOfThought().run("q", backend=model, trace_path=trace)
    assert result.stop_reason == "error" and "[REDACTED]" in (result.error or "")
    with pytest.raises(Exception) as raised:
        await model.complete(ChatRequest(messages=(Message(role="user", content="q"),)))
    assert key not in str(raised.value) and key not in repr(raised.value)
    assert key not in trace.read_text() and key not in result.model_dump_json()
    assert key not in everything_logged(debug_logs)
    await model.aclose()


async def test_a_key_the_server_echoes_is_not_in_the_chained_sdk_error() -> None:
    key = KEYS[1]
    model = backend(key, [401], echo=True)
    with pytest.raises(Exception) as raised:
        await model.complete(ChatRequest(messages=(Message(role="user", content="q"),)))
    chain: list[str] = []
    cause: BaseException | None = raised.value
    while cause is not None:
        chain += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    await model.aclose()
    assert not any(key in text for text in chain)
