"""A thinking budget (budget forcing) on the in-process backend: the thinking never exceeds its budget, the
whole reply never exceeds ``max_tokens``, and an answer follows. The mechanics are checked with a scripted
sampler (every case) and once on the real SmolLM2-135M (not a reasoner, but it thinks and answers when made to)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop import BackendError, LlamaCppBackend
from thinkloop.backends.llamacpp_thinking import (
    ANSWER_PREFIX,
    CLOSE_THINKING,
    FORCE_ANSWER,
    THINK_OPEN,
    NoRoomToThink,
    think_then_answer,
)
from thinkloop.types import ChatRequest


def tokenize(text: str) -> list[int]:
    return [ord(c) for c in text]  # one token a character


class ScriptedModel:
    """Thinks ``thought`` characters (stopping by itself after them), then answers ``answer``."""

    def __init__(self, thought: int, answer: str = " 42") -> None:
        self.thought, self.answer = thought, answer
        self.contexts: list[str] = []

    def __call__(self, context: list[int], max_tokens: int, stop: Sequence[str]) -> tuple[str, str, int]:
        self.contexts.append("".join(map(chr, context)))
        text = "t" * self.thought if "</think>" in stop else self.answer
        if len(text) > max_tokens:
            return text[:max_tokens], "length", max_tokens
        return text, "stop", len(text)


def run(model: ScriptedModel, *, budget: int, limit: int, opened: bool = False) -> object:
    return think_then_answer(
        tokenize("PROMPT"),
        budget=budget,
        limit=limit,
        n_ctx=10_000,
        prompt_opens_thinking=opened,
        tokenize=tokenize,
        sample=model,
        template_stop=["<|end|>"],
        answer_stop=[],
    )


@given(thought=st.integers(0, 300), budget=st.integers(0, 300), limit=st.integers(40, 400))
def test_thinking_stays_in_its_budget_and_the_reply_in_max_tokens(thought: int, budget: int, limit: int) -> None:
    model = ScriptedModel(thought)
    reply = run(model, budget=budget, limit=limit)
    assert reply.reasoning_tokens <= budget and reply.completion_tokens <= limit
    think_limit = min(budget, limit - len(THINK_OPEN) - len(FORCE_ANSWER) - 1)
    assert reply.reasoning_tokens == min(thought, think_limit)
    assert reply.forced == (think_limit == 0 or thought > think_limit)  # a budget of 0 forces at once
    bridge = FORCE_ANSWER if reply.forced else CLOSE_THINKING
    assert model.contexts[-1] == "PROMPT" + THINK_OPEN + "t" * reply.reasoning_tokens + bridge
    answer = " 42"[: limit - len(THINK_OPEN) - reply.reasoning_tokens - len(bridge)]  # what max_tokens leaves
    assert reply.text == (ANSWER_PREFIX + answer if reply.forced else answer)
    assert reply.finish_reason == ("stop" if answer == " 42" else "length")
    assert reply.completion_tokens == len(THINK_OPEN) + reply.reasoning_tokens + len(bridge) + len(answer)


def test_a_template_that_opened_the_block_gets_no_second_opening() -> None:
    model = ScriptedModel(5)
    reply = run(model, budget=100, limit=100, opened=True)
    assert model.contexts[0] == "PROMPT" and reply.reasoning == "ttttt" and not reply.forced


def test_too_few_tokens_for_the_tags_is_one_clear_error() -> None:
    with pytest.raises(
        NoRoomToThink,
        match=re.escape("max_tokens=20 leaves no room to think and answer: the thinking tags alone take 32 tokens"),
    ):
        run(ScriptedModel(5), budget=10, limit=20)


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="thinking_budget must be at least 0, got -1"):
        LlamaCppBackend(thinking_budget=-1)
    with pytest.raises(ValueError, match="thinking_budget"):
        ChatRequest.of("hi", thinking_budget=-1)


@pytest.mark.integration
@pytest.mark.anyio
async def test_smollm2_thinks_within_its_budget_then_answers(smollm2: LlamaCppBackend) -> None:
    request = ChatRequest.of(
        "What is 12 + 30? Think step by step.", max_tokens=48, temperature=0, seed=3, thinking_budget=6, n=2
    )
    completion = await smollm2.complete(request)
    usage = completion.usage
    assert usage.reasoning_tokens == 12 and not usage.reasoning_tokens_estimated  # both cut at 6
    assert usage.completion_tokens is not None and usage.completion_tokens <= 2 * 48
    for choice in completion.choices:
        assert choice.reasoning and len(choice.reasoning) < 60
        assert choice.text.startswith(ANSWER_PREFIX) and choice.text.removeprefix(ANSWER_PREFIX).strip()
    with pytest.raises(BackendError, match="max_tokens=8 leaves no room to think and answer"):
        await smollm2.complete(request.model_copy(update={"max_tokens": 8}))
