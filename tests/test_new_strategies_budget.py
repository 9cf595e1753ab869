"""Every strategy of issue 28 under random budgets: never over the tokens or calls it was given, and a
budget stop still returns an answer when one was drawn."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thinkloop.backends.base import Capabilities
from thinkloop.backends.scripted import ScriptedBackend, confident_reply
from thinkloop.runtime.budget import Budget
from thinkloop.strategies.base import Strategy
from thinkloop.strategies.cascade import Cascade
from thinkloop.strategies.registry import build_strategy
from thinkloop.types import ChatRequest, Choice

SPECS = [
    "deepconf:n=4",
    "deepconf-online:n=4,warmup=2,parallel=1",
    "deepconf-online:n=5,warmup=2,chunk_tokens=16,window=8,consensus=1.0",
    "beam:n=4,beam_width=2,max_steps=3",
    "dvts:n=4,beam_width=2,max_steps=3",
    "particles:n=3,max_steps=3",
    "particles:n=3,max_steps=2,sweeps=2",
    "usc:n=3",
    "moa:n=2",
    "cascade:n=2,strong_n=2,agreement=1.0",
]
SEQUENTIAL = Capabilities(honours_n=False, prompt_overhead_tokens=0, logprobs=True)


def wordy_backend(lengths: list[int]) -> ScriptedBackend:
    sizes = itertools.cycle(lengths)
    flip = itertools.cycle(["6", "7"])

    def reply(request: ChatRequest) -> Choice:
        system = request.messages[0].content
        if "SCORE" in system:
            return Choice(text="SCORE: 7")
        if "most consistent" in system:
            return Choice(text="The most consistent response is Response 1.")
        words = " ".join(["word"] * next(sizes))
        return confident_reply(f"{words} Answer: {next(flip)}", 0.9)

    return ScriptedBackend(reply, capabilities=SEQUENTIAL)


def build(spec: str, lengths: list[int]) -> Strategy:
    if spec.startswith("cascade"):
        options = build_strategy(spec).config.model_dump(exclude_defaults=True)
        return Cascade(cheap=wordy_backend(lengths), max_tokens=64, **options)
    return build_strategy(spec, max_tokens=64)


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tokens=st.integers(min_value=60, max_value=1500),
    calls=st.integers(min_value=1, max_value=12),
    lengths=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=5),
)
def test_every_new_strategy_honours_the_budget(spec: str, tokens: int, calls: int, lengths: list[int]) -> None:
    budget = Budget(tokens=tokens, calls=calls)
    result = build(spec, lengths).run_sync("q", backend=wordy_backend(lengths), budget=budget)
    assert result.usage.total_tokens <= tokens
    assert result.usage.calls <= calls
    answered = [n for n in result.graph.by_status("done") if n.text and "Answer:" in n.text]
    if answered and result.stop_reason == "budget":
        assert result.answer in ("6", "7")
