"""A storm of 429s while 64 branches are in flight, through the real SDK against the mock server: the run
completes after the storm, and samples whose retries ran out are failures with their error, never votes and
never wrong answers (issue 16's fault suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkloop import Budget, OpenAIBackend, SelfConsistency
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.runner import run_benchmark
from thinkloop.bench.store import read_records
from thinkloop.testing.faults import serve_faulty
from thinkloop.testing.mock_server import MockConfig

pytestmark = pytest.mark.anyio

QUESTION = "What is 1234 + 4321?"
STORM = 150
"""With 64 samples of 3 attempts each (2 retries), a storm of 150 429s leaves between 22 and 50
samples without an answer (each failed one took 3 storm replies; each answered one took at most 2)."""


async def test_the_run_completes_after_a_429_storm_and_exhausted_samples_are_failures() -> None:
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=4), storm=STORM) as server:
        backend = OpenAIBackend("mock", base_url=server.base_url, api_key="x", honours_n=False, max_retries=2)
        result = await SelfConsistency(n=64, max_tokens=32).run(
            QUESTION, backend=backend, budget=Budget(tokens=64 * 200)
        )
        await backend.aclose()
        stats = server.stats
    answered, failed = result.data["samples"], 64 - result.data["samples"]  # type: ignore[index]
    assert stats.rate_limited == STORM and stats.max_in_flight > 1
    assert stats.requests == answered  # every answered sample was one request that reached the model
    assert 22 <= failed <= 50 and answered >= 14
    assert result.stop_reason == "completed" and result.answer == "5555"
    assert sum(result.data["votes"].values()) == answered  # type: ignore[index]  # failures cast no vote
    attempts = [n for n in result.graph.by_status("failed") if n.kind == "generate"]
    assert len(attempts) == STORM  # every 429 is a failed attempt in the graph, with its error
    assert all("rate limited" in (n.error or "") for n in attempts)
    exhausted = [n for n in attempts if (n.data or {}).get("attempt") == 3]  # the third and last attempt
    assert len(exhausted) == failed
    assert result.usage.calls == answered + STORM  # every attempt sent is counted
    assert result.usage.completion_tokens == stats.completion_tokens


async def test_a_problem_whose_every_sample_is_rate_limited_is_a_failed_record(tmp_path: Path) -> None:
    problems = tuple(Problem(id=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1), line=i + 1) for i in range(2))
    dataset = Dataset(name="toy", path=Path("toy.jsonl"), problems=problems)
    out = tmp_path / "r.jsonl"
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=4), storm=3 * 4 * 2) as server:
        backend = OpenAIBackend("mock", base_url=server.base_url, api_key="x", honours_n=False, max_retries=2)
        summary = await run_benchmark([dataset], ["sc:n=4"], [backend], out)
        await backend.aclose()
    assert (summary.ran, summary.failed, summary.correct) == (2, 2, 0)
    for record in read_records(out):
        assert (record.status, record.correct, record.stop_reason) == ("failed", None, "error")
        assert "rate limited" in (record.error or "")
