"""The simulated models behind the search and confidence benchmark: their known properties hold."""

from __future__ import annotations

import pytest

from thinkloop.bench.simulated import Spread
from thinkloop.bench.simulated_search import ConfidentSimulatedBackend, SimulatedPRM, SimulatedStepBackend
from thinkloop.strategies.confidence import measure, token_confidences
from thinkloop.types import ChatRequest, Message

pytestmark = pytest.mark.anyio

Q = "What is item 1?"


async def test_confidences_track_correctness_and_a_continued_trace_keeps_its_answer() -> None:
    backend = ConfidentSimulatedBackend({Q: "500"}, spread=Spread(p=0.5), reply_words=20)
    completion = await backend.complete(ChatRequest.of(Q, n=128, logprobs=True))
    right = [measure(token_confidences(c), "mean") for c in completion.choices if c.text.endswith("500.")]
    wrong = [measure(token_confidences(c), "mean") for c in completion.choices if not c.text.endswith("500.")]
    assert right and wrong and sum(right) / len(right) > sum(wrong) / len(wrong) + 0.1
    first = await backend.complete(ChatRequest.of(Q, max_tokens=8, logprobs=True))
    piece = first.choices[0]
    assert piece.finish_reason == "length" and len(piece.logprobs) == 8
    rest = await backend.complete(
        ChatRequest(
            messages=(Message(role="user", content=Q), Message(role="assistant", content=piece.text)), logprobs=True
        )
    )
    answer = piece.text.split()[3].rstrip(".")
    assert rest.choices[0].text.rstrip().endswith(f"{answer}.") and rest.choices[0].finish_reason == "stop"
    assert len((piece.text + rest.choices[0].text).split()) == 4 + 20 + 4


async def test_steps_derail_for_good_and_the_prm_sees_it_through_noise() -> None:
    backend = SimulatedStepBackend({Q: "500"}, derail={Q: 0.5}, steps=3, seed=1)
    whole = await backend.complete(ChatRequest.of(Q, n=100))
    for choice in whole.choices:
        steps = choice.text.split("\n\n")
        assert len(steps) == 3
        slipped = ["slips" in s for s in steps]
        assert slipped == sorted(slipped)  # once derailed, derailed to the end
        assert steps[-1].endswith("Answer: 500") == (not slipped[-1])
    step = await backend.complete(
        ChatRequest(
            messages=(Message(role="user", content=Q), Message(role="assistant", content="Step 1 slips: x\n\n")),
            stop=("\n\n",),
        )
    )
    assert step.choices[0].text.startswith("Step 2 slips")
    prm = SimulatedPRM(separation=1.0, noise=0.5, seed=0)
    on = [prm.step_reward(f"q{i}", ["Step 1 holds"]) for i in range(200)]
    off = [prm.step_reward(f"q{i}", ["Step 1 slips"]) for i in range(200)]
    assert sum(a > 0.5 for a in on) > 180 and sum(b < 0.5 for b in off) > 180
    assert prm.step_reward("q", ["a"]) == prm.step_reward("q", ["a"])  # drawn once per prefix
