"""`thinkloop ask --strategy NAME` runs every registered strategy on the embedded default model."""

from __future__ import annotations

import json

import pytest

from thinkloop.cli import main
from thinkloop.strategies.registry import STRATEGIES

SMALL = {
    "direct": "direct",
    "cot": "cot",
    "sc": "sc:n=2",
    "sc-adaptive": "sc-adaptive:n=3",
    "bon": "bon:n=2,judge_max_tokens=32",
    "critique": "critique:max_rounds=1,critique_max_tokens=32",
    "tree": "tree:branching=2,max_depth=1",
    "auto": "auto:probe=2,max_samples=3",
    "effort": "effort:minimal",
}


def test_every_registered_strategy_is_covered() -> None:
    assert set(SMALL) == set(STRATEGIES)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(SMALL))
def test_ask_runs_the_strategy_on_the_embedded_model(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "What is 2 + 3?", "--strategy", SMALL[name], "--max-tokens", "32", "--json"])
    out, err = capsys.readouterr()
    result = json.loads(out)
    # The tiny model, cut at 32 tokens, may give no answer: a reply cut off with none exits 4 (no answer) and
    # says so; a whole reply with no "Answer:" line is a reply (0), and an answer is always 0.
    assert code == result["exit_status"], err
    cut_off = result["candidate"] is None or result["candidate"]["finish_reason"] == "length"
    assert code == (0 if result["answer"] is not None or not cut_off else 4), err
    if code == 4:
        assert err.startswith("thinkloop: no answer: ") and (result["warnings"] or result["candidate"] is None)
    assert result["verdict"] == "unchecked" and result["stop_detail"]
    assert result["model"] == "SmolLM2-135M-Instruct"
    assert result["usage"]["calls"] >= 1 and result["usage"]["completion_tokens"] > 0
    assert result["stop_reason"] in {"completed", "converged", "max_rounds", "accepted"}
    kinds = {node["kind"] for node in result["graph"]["nodes"]}
    assert "question" in kinds and kinds & {"generate", "expand"}
