"""The effort knob: one table, ``think()``, ``effort:LEVEL`` specs, ``ask --effort``, and pass-through."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx2
import pytest

from thinkloop import EFFORTS, ConfigurationError, OpenAIBackend, think, think_sync
from thinkloop.bench import load_summaries, run_benchmark
from thinkloop.bench.simulated import SimulatedBackend, simulated_dataset
from thinkloop.cli import main
from thinkloop.strategies.effort import EFFORT_TABLE, plan_for
from thinkloop.strategies.registry import build_strategy

QUESTION = "What is the value of item 7?"
BAD = "unknown effort 'extreme'; the levels are none, minimal, low, medium, high, auto"


def right(question: str = QUESTION) -> SimulatedBackend:
    return SimulatedBackend({question: "459"}, p=1.0)


@pytest.mark.parametrize("level", EFFORTS)
def test_every_level_runs_its_table_strategy_under_its_budget(level: str) -> None:
    result = think_sync(QUESTION, backend=right(), effort=level, max_tokens=64)
    plan = plan_for(level)
    assert result.answer == "459"
    assert result.strategy == f"effort:{level}"
    assert result.data is not None and result.data["effort"] == {
        "level": level,
        "strategy": plan.strategy,
        "tokens": plan.tokens,
        "passed_through": False,
    }
    assert result.usage.total_tokens <= plan.tokens


def test_a_spec_names_the_level_and_its_budget_caps_the_run() -> None:
    strategy = build_strategy("effort:high", max_tokens=512)
    assert strategy.label == "effort:high"
    assert EFFORT_TABLE["none"].tokens == 2_000
    # effort:none's 2,000 tokens cannot hold a 3,000-token reply: the call is cut to what the budget holds
    result = think_sync(QUESTION, backend=right(), effort="none", max_tokens=3_000)
    (call,) = [node for node in result.graph.nodes() if node.request is not None]
    assert call.request.max_tokens < 2_000


def test_a_bad_level_is_one_error_naming_the_levels() -> None:
    for make in (
        lambda: build_strategy("effort:extreme"),
        lambda: think_sync(QUESTION, backend=right(), effort="extreme"),
    ):
        with pytest.raises(ConfigurationError, match=re.escape(BAD)):
            make()


def _reasoning_server(bodies: list[dict[str, Any]]) -> httpx2.MockTransport:
    def respond(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        bodies.append(body)
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Answer: 459"}}
                ],
                "usage": {
                    "prompt_tokens": 20,
                    "completion_tokens": 90,
                    "total_tokens": 110,
                    "completion_tokens_details": {"reasoning_tokens": 80},
                },
            },
        )

    return httpx2.MockTransport(respond)


@pytest.mark.anyio
async def test_a_reasoning_model_gets_the_level_itself_in_one_direct_call() -> None:
    bodies: list[dict[str, Any]] = []
    backend = OpenAIBackend(
        "o3-mini",
        base_url="http://127.0.0.1:9/v1",
        api_key="k",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=_reasoning_server(bodies)),
    )
    result = await think(QUESTION, backend=backend, effort="high")
    assert result.answer == "459"
    assert len(bodies) == 1 and bodies[0]["reasoning_effort"] == "high"
    assert result.data is not None and result.data["effort"]["passed_through"] is True
    assert result.data["effort"]["strategy"] == "direct"


def test_bench_runs_effort_specs(tmp_path: Any) -> None:
    data = simulated_dataset(4)
    out = tmp_path / "r.jsonl"
    anyio.run(lambda: run_benchmark([data], ["effort:low"], [SimulatedBackend.for_dataset(data, p=1.0)], out))
    (summary,) = load_summaries(out)
    assert (summary.strategy, summary.n, summary.accuracy) == ("effort:low", 4, 1.0)


def test_ask_effort_and_strategy_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--effort", "high", "--strategy", "cot"]) != 0
    assert "--effort high picks a strategy, and --strategy cot names one too" in capsys.readouterr().err
    assert main(["ask", "q", "--effort", "extreme"]) != 0
    assert "invalid choice: 'extreme' (choose from 'none', 'minimal', 'low', 'medium', 'high', 'auto')" in (
        capsys.readouterr().err
    )


def test_ask_effort_runs_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.testing.mock_server import MockConfig, MockServerProcess

    with MockServerProcess(MockConfig(p_right=1.0, model="mock")) as server:
        code = main(
            ["ask", "What is 12 + 30?", "--effort", "low", "--base-url", server.base_url, "--model", "mock", "--json"]
        )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and (payload["strategy"], payload["answer"]) == ("effort:low", "42")
    assert payload["data"]["effort"]["tokens"] == EFFORT_TABLE["low"].tokens
