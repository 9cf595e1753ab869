"""Cascade, universal self-consistency and mixture-of-agents: the decisions they make on scripted models."""

from __future__ import annotations

import pytest

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.verdict import Verdict
from thinkloop.strategies.cascade import Cascade
from thinkloop.strategies.moa import MixtureOfAgents
from thinkloop.strategies.registry import build_strategy
from thinkloop.strategies.usc import UniversalSelfConsistency, parse_selection
from thinkloop.types import ChatRequest

pytestmark = pytest.mark.anyio


async def test_cascade_answers_with_the_cheap_model_when_its_samples_agree() -> None:
    cheap = ScriptedBackend(["Answer: 5"] * 3, name="cheap")
    strong = ScriptedBackend([], name="strong")  # any call to it would fail: it is never asked
    result = await Cascade(cheap=cheap, n=3).run("q", backend=strong)
    assert result.answer == "5" and result.stop_reason == "converged"
    assert result.data["escalated"] is False and result.data["strong_tokens"] == 0
    assert result.data["cheap_tokens"] > 0 and strong.requests == []


async def test_cascade_escalates_on_disagreement_and_reports_both_costs() -> None:
    cheap = ScriptedBackend(["Answer: 5", "Answer: 6", "Answer: 5"], name="cheap")
    strong = ScriptedBackend(["Answer: 7"] * 3, name="strong")
    result = await Cascade(cheap=cheap, n=3, strong_n=3).run("q", backend=strong)
    assert result.answer == "7"
    assert result.data["escalated"] is True and "2 of 3 agree" in result.data["reason"]
    assert result.data["strong_tokens"] > 0 and sum(r.n for r in strong.requests) == 3
    decide = [n for n in result.graph.nodes() if n.kind == "decide"]
    assert len(decide) == 1 and decide[0].data["decision"] == "escalate" and "disagree" in decide[0].data["reason"]


async def test_cascade_escalates_when_the_check_rejects_the_cheap_answer() -> None:
    class Only7:
        async def verify(self, question: str, candidate: object, ctx: object = None) -> Verdict:
            return Verdict.accept() if candidate.answer == "7" else Verdict.reject("wrong")  # type: ignore[attr-defined]

    cheap = ScriptedBackend(["Answer: 5"] * 2, name="cheap")
    strong = ScriptedBackend(["Answer: 7"] * 2, name="strong")
    result = await Cascade(cheap=cheap, n=2, strong_n=2, agreement=0.5).run("q", backend=strong, verifier=Only7())
    assert result.answer == "7" and result.data["reason"] == "the check rejected the cheap answer"


async def test_cascade_runs_an_inner_strategy_on_escalation() -> None:
    cheap = ScriptedBackend(["Answer: 1", "Answer: 2"], name="cheap")
    strong = ScriptedBackend(["Answer: 9"], name="strong")
    result = await Cascade(cheap=cheap, n=2, inner=build_strategy("cot")).run("q", backend=strong)
    assert result.answer == "9" and len(strong.requests) == 1


def test_cascade_without_a_cheap_model_says_so() -> None:
    with pytest.raises(ConfigurationError, match="cheap model"):
        build_strategy("cascade").run_sync("q", backend=ScriptedBackend(["Answer: 1"]))


async def test_usc_returns_the_reply_the_model_selects() -> None:
    replies = iter(
        [
            "The sky is blue because of scattering.",
            "It is green.",
            "Rayleigh scattering makes it blue.",
            "Comparing them... The most consistent response is Response 3.",
        ]
    )
    backend = ScriptedBackend(lambda request: next(replies), capabilities=None)
    result = await UniversalSelfConsistency(n=3).run("Why is the sky blue?", backend=backend)
    assert result.text == "Rayleigh scattering makes it blue." and result.data["selected"] == 3
    shown = backend.requests[-1].messages[-1].content
    assert "Response 1:\nThe sky is blue" in shown and "Response 3:" in shown


async def test_usc_falls_back_to_a_vote_when_the_selection_is_unreadable() -> None:
    replies = iter(["Answer: 4", "Answer: 5", "Answer: 4", "I cannot decide."])
    result = await UniversalSelfConsistency(n=3).run("q", backend=ScriptedBackend(lambda r: next(replies)))
    assert result.answer == "4" and any("majority vote" in n for n in result.notes)
    assert parse_selection("Response 7", 3) is None
    assert parse_selection("the most consistent response is Response 2", 3) == 1


async def test_moa_shows_each_layer_the_last_ones_answers_and_aggregates_on_the_run_model() -> None:
    a = ScriptedBackend(lambda r: "A says 10", name="a")
    b = ScriptedBackend(lambda r: "B says 12", name="b")
    aggregator = ScriptedBackend(lambda r: "Answer: 11", name="agg")
    result = await MixtureOfAgents(proposers=[a, b], layers=2).run("q", backend=aggregator)
    assert result.answer == "11"
    assert "Responses from models" not in a.requests[0].messages[0].content  # layer 1 sees no references
    second: ChatRequest = a.requests[1]
    assert "1. A says 10" in second.messages[0].content and "2. B says 12" in second.messages[0].content
    final = aggregator.requests[0].messages[0].content
    assert final.count("Responses from models") == 1 and "2. B says 12" in final
    assert sum(m.role == "system" for m in aggregator.requests[0].messages) == 1
    assert result.data["proposers"] == ["a", "b"]


async def test_cascade_says_in_one_line_who_answered() -> None:
    cheap = ScriptedBackend(["Answer: 5"] * 2, name="cheap")
    result = await Cascade(cheap=cheap, n=2).run("q", backend=ScriptedBackend([], name="strong"))
    assert result.stop_detail == "answered by the cheap model cheap (2 of 2 samples agree)"
    cheap = ScriptedBackend(["Answer: 5", "Answer: 6"], name="cheap")
    result = await Cascade(cheap=cheap, n=2, strong_n=1).run("q", backend=ScriptedBackend(["Answer: 7"], name="strong"))
    assert result.stop_detail.startswith("escalated to strong: the cheap samples disagree")
