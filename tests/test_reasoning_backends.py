"""Open reasoning models through the real ``openai`` SDK and the mock server's reasoning mode: each shape a
server puts thinking in, streamed and not, the thinking kept out of the answer and the vote, and its tokens
counted where the server reports them and estimated (and marked) where it does not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop import OpenAIBackend, SelfConsistency, load_trace
from thinkloop.backends.reasoning import estimate_tokens, reasoning_usage, split_choices, split_thinking
from thinkloop.exceptions import BackendError
from thinkloop.runtime.budget import Budget, BudgetLedger
from thinkloop.testing.mock_reasoner import SHAPES, serve_reasoner
from thinkloop.testing.mock_server import MockConfig, right_answer
from thinkloop.types import ChatRequest, Choice, Completion, RunUsage, Usage
from thinkloop.view.document import build_document

pytestmark = pytest.mark.anyio

QUESTION = "What is 12 + 30?"
DECOY = str(right_answer(QUESTION) + 1000)  # where the mock's thinking ends: a wrong number


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("reported", [False, True], ids=["estimated", "reported"])
@pytest.mark.parametrize("shape", SHAPES)
async def test_each_shape_keeps_thinking_apart_and_counts_it(shape: str, stream: bool, reported: bool) -> None:
    async with (
        serve_reasoner(
            MockConfig(p_right=1.0, filler_words=12),
            shape=shape,  # type: ignore[arg-type]
            report_reasoning_tokens=reported,
        ) as server,
        OpenAIBackend("mock", base_url=server.base_url, stream=stream) as backend,
    ):
        completion = await backend.complete(ChatRequest.of(QUESTION, n=2))
    assert [c.text for c in completion.choices] == ["The answer is 42."] * 2
    for choice in completion.choices:
        assert choice.reasoning is not None and choice.reasoning.endswith("let me check that again.")
        assert DECOY in choice.reasoning and "<think>" not in choice.reasoning + choice.text
    thought_words = 12 + len(f"So far it looks like {DECOY}, but let me check that again.".split())
    usage = completion.usage
    assert usage.completion_tokens == 2 * (thought_words + 4)
    if reported:
        assert (usage.reasoning_tokens, usage.reasoning_tokens_estimated) == (2 * thought_words, False)
    else:
        estimate = sum(estimate_tokens(c.reasoning or "") for c in completion.choices)
        expected = min(estimate, usage.completion_tokens)  # a part never exceeds its whole
        assert (usage.reasoning_tokens, usage.reasoning_tokens_estimated) == (expected, True)


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_reply_cut_mid_thought_has_no_answer(shape: str) -> None:
    async with (
        serve_reasoner(MockConfig(p_right=1.0), shape=shape) as server,  # type: ignore[arg-type]
        OpenAIBackend("mock", base_url=server.base_url) as backend,
    ):
        completion = await backend.complete(ChatRequest.of(QUESTION, max_tokens=5))
    choice = completion.choices[0]
    assert (choice.text, choice.finish_reason, choice.truncated_empty) == ("", "length", True)
    assert choice.reasoning is not None and len(choice.reasoning.split()) == 5


async def test_voting_reads_answers_and_the_trace_and_result_keep_the_thinking(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    async with (
        serve_reasoner(MockConfig(p_right=0.6, filler_words=6), shape="think-tags") as server,
        OpenAIBackend("mock", base_url=server.base_url, stream=True) as backend,
    ):
        result = await SelfConsistency(n=5, max_tokens=200).run(QUESTION, backend=backend, trace_path=trace)
    assert result.votes is not None and DECOY not in result.votes and sum(result.votes.values()) == 5
    assert result.answer == "42"
    assert all(a.reasoning and DECOY in a.reasoning and DECOY not in a.text for a in result.attempts)
    assert result.candidate is not None and result.candidate.reasoning is not None
    assert result.usage.estimated_reasoning_tokens == result.usage.reasoning_tokens  # every call estimated
    assert 0 < result.usage.reasoning_tokens <= result.usage.completion_tokens
    calls = [e.node for e in load_trace(trace) if e.kind == "node" and e.node.completion is not None]
    assert calls and all(c.reasoning and DECOY in c.reasoning for n in calls for c in n.completion.choices)
    assert all(n.usage is not None and n.usage.reasoning_tokens_estimated for n in calls)
    page = build_document(load_trace(trace))  # what the viewer draws: the thinking apart, the estimate marked
    shown = [n for n in page["runs"][0]["nodes"] if "choices" in n]
    assert shown and all(DECOY in c["reasoning"] and DECOY not in c["text"] for n in shown for c in n["choices"])
    assert all(n["usage"]["reasoning_tokens_estimated"] for n in shown)


async def test_a_thinking_budget_on_a_server_is_refused_before_sending() -> None:
    async with (
        serve_reasoner() as server,
        OpenAIBackend("mock", base_url=server.base_url) as backend,
    ):
        with pytest.raises(
            BackendError,
            match=re.escape("thinking_budget=64 needs a backend that can continue a completion (LlamaCppBackend)"),
        ) as caught:
            await backend.complete(ChatRequest.of(QUESTION, thinking_budget=64))
        assert server.stats.requests == 0
    assert not caught.value.retryable and not caught.value.maybe_billed


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<think>\nadd them\n</think>\n\nThe answer is 42.", ("add them", "The answer is 42.")),
        ("  <think>a</think>b", ("a", "b")),
        ("add them</think>\n42", ("add them", "42")),  # the chat template opened the block (R1 distills)
        ("<think>still thinking", ("still thinking", "")),  # cut off mid-thought: no answer
        ("The answer is 42.", (None, "The answer is 42.")),
        ("x <think>y</think> z", (None, "x <think>y</think> z")),  # not at the start: left alone
    ],
)
def test_split_thinking(content: str, expected: tuple[str | None, str]) -> None:
    assert split_thinking(content) == expected


_PLAIN = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40)


@given(thought=_PLAIN, answer=_PLAIN)
def test_split_thinking_recovers_both_parts(thought: str, answer: str) -> None:
    reasoning, text = split_thinking(f"<think>{thought}</think>{answer}")
    assert (reasoning, text) == (thought.strip(), answer.lstrip())


def test_an_estimate_never_exceeds_the_completion_and_a_report_wins() -> None:
    choice = Choice(text="42", reasoning="x" * 400)
    assert reasoning_usage(Usage(completion_tokens=30), [choice]) == Usage(
        completion_tokens=30, reasoning_tokens=30, reasoning_tokens_estimated=True
    )
    reported = Usage(completion_tokens=300, reasoning_tokens=250)
    assert reasoning_usage(reported, [choice]) is reported
    assert reasoning_usage(Usage(completion_tokens=3), [Choice(text="42")]) == Usage(completion_tokens=3)


def test_old_records_load_and_sums_count_estimated_calls() -> None:
    old = {"choices": [{"text": "42", "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    completion = Completion.model_validate(old)
    assert completion.choices[0].reasoning is None and not completion.usage.reasoning_tokens_estimated
    assert Completion.model_validate_json(completion.model_dump_json()) == completion
    assert RunUsage.model_validate({"calls": 1}).estimated_reasoning_tokens == 0
    estimated = Usage(prompt_tokens=1, completion_tokens=9, reasoning_tokens=6, reasoning_tokens_estimated=True)
    reported = Usage(prompt_tokens=1, completion_tokens=5, reasoning_tokens=4)
    total = RunUsage().add(estimated).add(reported).add(Usage(prompt_tokens=1, completion_tokens=2))
    assert (total.reasoning_tokens, total.estimated_reasoning_tokens, total.calls) == (10, 6, 3)
    assert (total + total).estimated_reasoning_tokens == 12
    assert json.loads(total.model_dump_json())["estimated_reasoning_tokens"] == 6
    ledger = BudgetLedger(Budget(tokens=1000))
    for usage in (estimated, reported):
        ledger.settle(ledger.reserve(prompt_tokens=1, max_tokens=10), usage)
    assert ledger.usage == RunUsage().add(estimated).add(reported)  # the engine's in-place sum agrees


def test_a_backend_with_a_tokenizer_counts_inline_thinking_instead_of_estimating() -> None:
    choices = [Choice(text="<think>add 12 and 30</think>\nThe answer is 42."), Choice(text="42", reasoning="r")]
    split, usage = split_choices(choices, Usage(completion_tokens=20), count_tokens=lambda text: len(text.split()))
    assert [(c.reasoning, c.text) for c in split] == [("add 12 and 30", "The answer is 42."), ("r", "42")]
    assert (usage.reasoning_tokens, usage.reasoning_tokens_estimated) == (5, False)
    _, estimated = split_choices(choices, Usage(completion_tokens=20))
    assert estimated.reasoning_tokens_estimated and estimated.reasoning_tokens == estimate_tokens("add 12 and 30") + 1


async def test_a_streamed_request_the_server_refuses_is_one_backend_error() -> None:
    async with (
        serve_reasoner() as server,
        OpenAIBackend("mock", base_url=server.base_url, stream=True) as backend,
    ):
        refused = "answered 400: Error code: 400 - 'n' must be a positive integer, got 0"
        with pytest.raises(BackendError, match=re.escape(refused)):
            await backend.complete(ChatRequest.of(QUESTION, extra_body={"n": 0}))
