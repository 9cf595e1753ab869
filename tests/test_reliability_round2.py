"""Reliability, second round (issue 25): errors that arrive after tokens were generated are billed, requests
reserve everything they send, cut streams are never answers.

Each test runs the real ``openai`` SDK against the fault-injecting mock server (``thinkloop.testing.faults``),
which counts what it would have billed; each failed against the runtime before this round.
"""

from __future__ import annotations

from typing import Any

import pytest

from thinkloop import (
    Budget,
    Capabilities,
    ChatRequest,
    Direct,
    Message,
    OpenAIBackend,
    ScriptedBackend,
    SelfConsistency,
)
from thinkloop.strategies.base import Conversation
from thinkloop.testing import MockConfig
from thinkloop.testing.faults import serve_faulty

pytestmark = pytest.mark.anyio

QUESTION = "What is 1200 + 34?"  # the mock's right answer is 1234: a cut stream ends "The answer is 12"


def _backend(server: Any, *, stream: bool = True, retries: int = 0) -> OpenAIBackend:
    return OpenAIBackend("mock", base_url=server.base_url, stream=stream, max_retries=retries)


# --- 1. billed unless proven otherwise --------------------------------------------------------------------
async def test_a_stream_that_ends_in_an_error_event_is_billed_at_its_reservation() -> None:
    """The server generated half a reply, then sent an SSE ``error`` event: it billed the tokens, so the run
    counts the call's whole reservation, never 0."""
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=4), faults=["error"]) as server:
        async with _backend(server) as backend:
            result = await Direct(max_tokens=64).run(QUESTION, backend=backend, budget=Budget(tokens=500))
        billed = server.stats.billed_tokens
    assert billed > 0
    assert result.answer is None and result.stop_reason == "error"
    assert result.usage.calls_without_usage == 1
    assert result.spent["tokens"] >= billed  # the reservation, which covers what the server billed


async def test_streamed_errors_never_let_the_server_bill_more_than_the_budget() -> None:
    """Every stream errors after generating, and the budget pays for about one call: the server's bill stays
    within it (before: each errored call was settled as free, six went out and the bill passed the budget)."""
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=40), always="error") as server:
        backend = OpenAIBackend("mock", base_url=server.base_url, stream=True, max_retries=0, honours_n=False)
        async with backend:
            result = await SelfConsistency(n=6, max_tokens=48).run(QUESTION, backend=backend, budget=Budget(tokens=300))
        billed, requests = server.stats.billed_tokens, server.stats.requests
    assert requests >= 1
    assert billed <= 300
    assert result.spent["tokens"] >= billed
    assert result.answer is None


async def test_a_dollar_budget_holds_against_streamed_errors() -> None:
    from thinkloop import Price

    price = Price(input=1_000_000.0, output=1_000_000.0)  # a token costs a dollar
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=40), always="error") as server:
        backend = OpenAIBackend("mock", base_url=server.base_url, stream=True, max_retries=0, honours_n=False)
        async with backend:
            result = await SelfConsistency(n=6, max_tokens=48).run(
                QUESTION, backend=backend, budget=Budget(dollars=300, price=price)
            )
        billed = server.stats.billed_tokens
    assert billed <= 300
    assert result.spent["dollars"] >= billed


async def test_an_error_the_backend_did_not_map_is_billed() -> None:
    """A backend that fails with an error of its own after the call was sent: billed at the reservation
    (before: settled as free)."""

    def broken(request: ChatRequest) -> str:
        raise RuntimeError("the connection pool broke while reading the reply")

    result = await Direct(max_tokens=32).run("q", backend=ScriptedBackend(broken), budget=Budget(tokens=1000))
    assert result.stop_reason == "error" and "RuntimeError" in (result.error or "")
    assert result.usage.calls_without_usage == 1 and result.spent["tokens"] > 32


def _tool_schema(words: int) -> list[dict[str, Any]]:
    description = " ".join(["measure"] * words)
    return [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": description,
                "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": description}}},
            },
        }
    ]


async def test_a_request_reserves_its_tools_and_is_refused_before_it_is_sent() -> None:
    """A 1,500-word tool schema on a 500-token budget: the reservation counts the tools, so the call never
    goes out (before: only the message text was reserved; the server billed 1,548 and the run said
    ``completed``)."""
    question = Conversation(QUESTION, extra_body={"tools": _tool_schema(750)})
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=4)) as server:
        async with _backend(server, stream=False) as backend:
            result = await Direct(max_tokens=64).run(question, backend=backend, budget=Budget(tokens=500))
        requests = server.stats.requests
    assert requests == 0
    assert result.stop_reason == "budget"


async def test_earlier_tool_calls_count_in_the_reservation() -> None:
    arguments = '{"q": "' + " ".join(["measure"] * 1500) + '"}'
    history = (
        Message(role="user", content="Look it up."),
        Message(
            role="assistant",
            content="",
            tool_calls=({"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": arguments}},),
        ),
        Message(role="tool", content="12", tool_call_id="c1"),
    )
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=4)) as server:
        async with _backend(server, stream=False) as backend:
            result = await Direct(max_tokens=64).run(
                Conversation(QUESTION, history), backend=backend, budget=Budget(tokens=2000)
            )
        requests = server.stats.requests
    assert requests == 0
    assert result.stop_reason == "budget"


def test_images_are_bounded_per_image_not_by_their_bytes() -> None:
    from thinkloop.backends.base import Capabilities, extras_tokens_upper_bound

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 200_000}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image, image]}]}
    caps = Capabilities()
    bound = extras_tokens_upper_bound(body, caps)
    assert 2 * caps.image_tokens <= bound < 2 * caps.image_tokens + 200


# --- 2. cut streams are failures, never answers -----------------------------------------------------------
async def test_a_stream_cut_mid_number_is_never_voted_as_an_answer() -> None:
    """Five samples whose streams stop at "The answer is 12" (of 1234), with no finish_reason and no [DONE]:
    none is an answer (before: five votes for 12, ``completed``)."""
    async with (
        serve_faulty(MockConfig(p_right=1.0, filler_words=4), always="cut") as server,
        _backend(server) as backend,
    ):
        result = await SelfConsistency(n=5, max_tokens=64).run(QUESTION, backend=backend, budget=Budget(tokens=5000))
    assert result.answer is None
    assert result.stop_reason != "completed"
    assert all(node.answer != "12" for node in result.graph.nodes())
    assert any(node.status == "failed" and "cut off" in (node.error or "") for node in result.graph.nodes())


async def test_a_cut_stream_is_retried_and_the_whole_reply_wins() -> None:
    async with (
        serve_faulty(MockConfig(p_right=1.0, filler_words=4), faults=["cut"]) as server,
        _backend(server, retries=1) as backend,
    ):
        result = await Direct(max_tokens=64).run(QUESTION, backend=backend, budget=Budget(tokens=5000))
    assert (result.answer, result.stop_reason) == ("1234", "completed")
    assert result.usage.calls_without_usage == 1  # the cut attempt, billed at its reservation


async def test_a_truncated_body_is_a_billed_failure_not_an_answer() -> None:
    async with serve_faulty(MockConfig(p_right=1.0, filler_words=4), always="truncate") as server:
        async with _backend(server, stream=False) as backend:
            result = await Direct(max_tokens=64).run(QUESTION, backend=backend, budget=Budget(tokens=500))
        billed = server.stats.billed_tokens
    assert result.answer is None
    assert result.spent["tokens"] >= billed > 0


async def test_a_reply_the_token_limit_cut_mid_number_states_no_answer() -> None:
    """The same cut by the token limit: "The answer is 12" of 1234, ``finish_reason="length"``, is no vote for
    12; a cut reply whose answer was closed before the limit still counts."""
    from thinkloop import Choice

    replies = [Choice(text="Adding: 1200 + 34. The answer is 12", finish_reason="length")] * 3 + [
        Choice(text="Adding: 1200 + 34. The answer is 1234. Let me also check by", finish_reason="length"),
        Choice(text="The answer is 1234.", finish_reason="stop"),
    ]
    backend = ScriptedBackend(replies, capabilities=Capabilities(honours_n=False))
    result = await SelfConsistency(n=5, max_tokens=16).run(QUESTION, backend=backend, budget=Budget(tokens=5000))
    assert result.answer == "1234"
    assert sorted(result.answers) == ["1234", "1234"]
