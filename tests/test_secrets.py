"""An API key of any shape never reaches an error message, a trace or a result, even when a server echoes it."""

from __future__ import annotations

import httpx2
import pytest

from thinkloop import Budget, ChainOfThought, OpenAIBackend

KEY = "plainkey1234567890"  # no "sk-" prefix, so pattern-based redaction alone would miss it


def echo_the_key(request: httpx2.Request) -> httpx2.Response:
    auth = request.headers["authorization"]
    return httpx2.Response(500, json={"error": {"message": f"bad gateway for {auth}", "type": "server_error"}})


@pytest.mark.anyio
async def test_an_echoed_key_of_any_shape_is_scrubbed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    backend = OpenAIBackend(
        "gpt-4o-mini",
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(echo_the_key)),
    )
    trace = tmp_path / "trace.jsonl"
    result = await ChainOfThought().run("q", backend=backend, budget=Budget(tokens=5_000), trace_path=trace)
    assert result.stop_reason == "error"
    assert "[REDACTED]" in (result.error or "")
    assert KEY not in trace.read_text()
    assert KEY not in result.model_dump_json()
    assert KEY not in repr(backend)
    await backend.aclose()
