"""Prices and native reasoning models: the shipped table, overrides, and an o1 row whose hidden reasoning
tokens and cost come out right through the real openai SDK on a mock transport."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest

from thinkloop.backends.openai import OpenAIBackend
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.report import render_json, summarize
from thinkloop.bench.runner import run_benchmark
from thinkloop.bench.store import read_records
from thinkloop.exceptions import ConfigurationError
from thinkloop.pricing import PriceTable, read_prices
from thinkloop.runtime.budget import Price
from thinkloop.types import RunUsage

SHIPPED = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o1", "o1-mini", "o3", "o3-mini", "o4-mini")


def test_the_shipped_table_prices_the_common_models_with_cached_input() -> None:
    table = PriceTable.default()
    for model in SHIPPED:
        price = table.lookup(model)
        assert price is not None, model
        assert price.cached_input is not None and 0 < price.cached_input <= price.input <= price.output
    assert table.lookup("o1") == Price(input=15.0, cached_input=7.5, output=60.0)


@pytest.mark.parametrize(
    ("name", "priced_as"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/o3-mini", "o3-mini"),
    ],
)
def test_dated_and_prefixed_names_find_their_price(name: str, priced_as: str) -> None:
    table = PriceTable.default()
    assert table.lookup(name) == table.lookup(priced_as)


def test_a_local_model_costs_nothing_unless_priced(tmp_path: Path) -> None:
    usage = RunUsage(calls=1, prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert PriceTable.default().cost("SmolLM2-135M-Instruct", usage) == 0.0
    path = tmp_path / "prices.toml"
    path.write_text("[SmolLM2-135M-Instruct]\ninput = 0.01\noutput = 0.02\n\n[o1]\ninput = 1\noutput = 2\n")
    table = PriceTable.load(path)
    assert table.cost("SmolLM2-135M-Instruct", usage) == pytest.approx(0.03)
    assert table.lookup("o1") == Price(input=1, output=2)  # the file overrides the shipped price
    assert table.lookup("gpt-4o") == PriceTable.default().lookup("gpt-4o")  # and keeps the rest


def test_a_bad_price_file_names_the_model_and_field(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"mine": {"input": -1, "output": 2}}))
    with pytest.raises(ConfigurationError, match=re.escape(f"{path}: model 'mine': field 'input': ")):
        read_prices(path)
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match=re.escape(f"{path}: malformed price file")):
        read_prices(path)


# --- a native reasoning model as a row ---------------------------------------------------------------------
def o1_reply(model: str, *, prompt: int, completion: int, reasoning: int, cached: int) -> dict[str, Any]:
    """A chat.completion body shaped like the API's for a reasoning model."""
    return {
        "id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
        "object": "chat.completion",
        "created": 1738960610,
        "model": f"{model}-2024-12-17",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Answer: 42", "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_60c9d5d7f0",
    }


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["o1", "o1-mini", "o3-mini"])
async def test_a_native_reasoning_row_reports_hidden_reasoning_and_its_cost(tmp_path: Path, model: str) -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=o1_reply(model, prompt=120, completion=900, reasoning=832, cached=64))

    backend = OpenAIBackend(
        model,
        base_url="https://api.openai.com/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    problems = (Problem(id="q1", question="6 * 7?", answer="42"), Problem(id="q2", question="40 + 2?", answer="42"))
    out = tmp_path / "r.jsonl"
    await run_benchmark([Dataset("toy", Path("toy.jsonl"), problems)], ["direct"], [backend], out, max_tokens=4000)

    assert [body["max_completion_tokens"] for body in sent] == [4000, 4000]
    assert all("temperature" not in body for body in sent)
    price = PriceTable.default().lookup(model)
    assert price is not None
    # reasoning tokens are inside the 900 completion tokens and billed as output, never twice
    expected = ((120 - 64) * price.input + 64 * price.cached_input + 900 * price.output) / 1e6  # type: ignore[operator]
    records = read_records(out)
    for record in records:
        assert (record.prompt_tokens, record.completion_tokens, record.reasoning_tokens) == (120, 900, 832)
        assert (record.cached_tokens, record.calls, record.correct) == (64, 1, True)
        assert math.isclose(record.cost, expected, rel_tol=1e-12)
    (row,) = json.loads(render_json(summarize(records)))
    assert (row["strategy"], row["model"], row["n"], row["accuracy"], row["failed"]) == ("direct", model, 2, 1.0, 0)
    assert (row["mean_reasoning_tokens"], row["total_reasoning_tokens"], row["mean_tokens"]) == (832, 1664, 1020)
    assert row["cost_per_question"] == pytest.approx(expected, rel=1e-5)
    assert row["cost_per_correct"] == pytest.approx(expected, rel=1e-5)
