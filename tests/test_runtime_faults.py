"""The runtime's guarantees under faults: timed-out and retried requests stay inside the budget, tight
budgets draw fewer full-length samples, a broken backend reply is a failure, inner budgets are not the run's.

(Issue 16, items 1, 3, 9, 10.) Each test fails against the runtime that settled a timed-out request as free
or let the SDK retry out of the budget's sight.
"""

from __future__ import annotations

import math
import random
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import ValidationError

from support import AcceptAnswer
from thinkloop import (
    BackendError,
    Budget,
    Capabilities,
    ChainOfThought,
    ChatRequest,
    Choice,
    Completion,
    Direct,
    OpenAIBackend,
    ScriptedBackend,
    SelfConsistency,
    Usage,
)
from thinkloop.testing import MockConfig, serve_mock

pytestmark = pytest.mark.anyio


# --- 1. timeouts and retries are budgeted ---------------------------------------------------------------
async def test_timed_out_and_retried_requests_are_reserved_and_billed_never_free() -> None:
    """A server slower than the timeout: every attempt that was sent reserved its worst case first and stays
    billed at it, so the server never sees more requests than the budget could pay for."""
    budget = Budget(tokens=600)
    async with serve_mock(MockConfig(latency=1.0)) as server:
        backend = OpenAIBackend("mock", base_url=server.base_url, timeout=0.3, max_retries=2, honours_n=False)
        async with backend:
            result = await SelfConsistency(n=8, max_tokens=64).run("What is 2 + 3?", backend=backend, budget=budget)
        sent = server.stats.requests
    assert result.stop_reason in ("budget", "error")
    assert result.answer is None
    assert sent >= 1
    # Nothing came back, and nothing was treated as free: what the ledger charged covers every request sent.
    assert result.usage.calls_without_usage == sent
    assert result.spent["tokens"] <= 600
    per_attempt_floor = 64  # each attempt reserved at least its max_tokens, plus its prompt
    assert result.spent["tokens"] >= sent * per_attempt_floor
    assert sent * per_attempt_floor <= 600


async def test_a_retried_request_that_finally_answers_counts_every_attempt() -> None:
    attempts = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            return httpx2.Response(
                503, json={"error": {"message": "overloaded", "type": "server_error"}}, headers={"retry-after": "0"}
            )
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Answer: 5"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
            },
        )

    backend = OpenAIBackend(
        "m",
        base_url="http://127.0.0.1:9/v1",
        max_retries=2,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    budget = Budget(tokens=10_000)
    result = await Direct(max_tokens=32).run("q", backend=backend, budget=budget)
    assert (result.answer, attempts) == ("5", 3)
    # Two 503s may have done work on the server: they stay billed at their reservations.
    assert result.usage.calls == 3 and result.usage.calls_without_usage == 2
    assert result.spent["tokens"] > 14
    assert [n.status for n in result.graph.nodes() if n.kind == "generate"] == ["failed", "failed", "done"]


async def test_a_400_is_not_retried() -> None:
    attempts = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal attempts
        attempts += 1
        return httpx2.Response(400, json={"error": {"message": "bad request", "type": "invalid_request_error"}})

    backend = OpenAIBackend(
        "m",
        base_url="http://127.0.0.1:9/v1",
        max_retries=3,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    result = await Direct().run("q", backend=backend)
    assert attempts == 1 and result.stop_reason == "error"


# --- 3. tight budgets with n --------------------------------------------------------------------------
async def test_a_tight_budget_draws_fewer_full_length_samples_and_says_why() -> None:
    seen: list[ChatRequest] = []

    def reply(request: ChatRequest) -> str:
        seen.append(request)
        return "Some reasoning here. Answer: 4"

    backend = ScriptedBackend(
        reply, capabilities=Capabilities(honours_n=True, prompt_overhead_tokens=0, per_message_overhead_tokens=0)
    )
    result = await SelfConsistency(n=16, max_tokens=20).run(
        "What is 2 + 2?", backend=backend, budget=Budget(tokens=300)
    )
    assert seen, "no request was sent"
    assert all(request.max_tokens == 20 for request in seen)  # never cut short
    drawn = len(result.attempts)
    assert 1 <= drawn < 16
    assert result.usage.calls == 1 and seen[0].n == drawn  # one request, as many samples as fit
    assert result.stop_reason == "budget"
    assert any(f"the budget holds {seen[0].n} of 16 samples at max_tokens=20" in note for note in result.notes)
    assert result.answer == "4"


# --- 9. a backend that returns something else ----------------------------------------------------------
class Broken:
    name = "broken"
    capabilities = Capabilities()

    def count_prompt_tokens(self, messages: Any) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Broken:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def complete(self, request: ChatRequest) -> Any:
        return {"choices": [{"text": "Answer: 1"}]}


async def test_a_reply_that_is_not_a_completion_is_a_failure_with_its_node_closed() -> None:
    budget = Budget(tokens=5_000)
    result = await ChainOfThought(max_tokens=32).run("q", backend=Broken(), budget=budget)  # type: ignore[arg-type]
    assert result.stop_reason == "error"
    assert result.error is not None and "returned dict, not a Completion" in result.error
    statuses = [n.status for n in result.graph.nodes() if n.kind == "generate"]
    assert statuses == ["failed"]
    assert result.spent["calls"] == 1  # counted, and its reservation settled (nothing left reserved)


# --- 10. inner budgets and strict limits ----------------------------------------------------------------
async def test_an_inner_slice_running_out_is_not_the_runs_budget() -> None:
    """Each inner run can afford one round of its three, so each stops on its own slice; the outer vote over
    their answers completes, and the run's own budget is far from spent."""
    backend = ScriptedBackend(lambda request: "Let me think. Answer: 7")
    inner = ChainOfThought(max_tokens=64, max_rounds=3)
    outer = SelfConsistency(n=3, inner=inner, inner_budget=Budget(tokens=300))
    result = await outer.run("q", backend=backend, budget=Budget(tokens=100_000), verifier=AcceptAnswer("8"))
    assert result.answer == "7"
    assert result.stop_reason == "completed"
    assert any("inner_budget" in note for note in result.notes)


@pytest.mark.parametrize("limit", ["tokens", "calls", "seconds", "dollars"])
def test_a_boolean_limit_is_refused(limit: str) -> None:
    with pytest.raises(ValidationError):
        Budget(**{limit: True}, price={"input": 1, "output": 1} if limit == "dollars" else None)


# --- retries under a storm, and cancellation --------------------------------------------------------------
async def test_a_backend_error_marked_retryable_is_retried_within_the_seconds_budget() -> None:
    calls = 0

    async def flaky(request: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        raise BackendError("try later", retryable=True, retry_after=5.0)

    with anyio.fail_after(5):
        result = await Direct().run("q", backend=ScriptedBackend(flaky), budget=Budget(seconds=1))
    # The server asked for 5 s and only 1 s was left: no retry that cannot finish in time.
    assert calls == 1 and result.stop_reason == "error"


async def test_backoff_grows_and_is_jittered() -> None:
    from thinkloop import RetryPolicy

    policy = RetryPolicy(max_retries=3, initial_backoff=0.5, max_backoff=1.5)
    rng = random.Random(0)
    delays = [policy.delay(attempt, None, rng.uniform(0.5, 1.0)) for attempt in range(4)]
    assert delays[3] is None
    assert all(d is not None and 0 < d <= 1.5 for d in delays[:3])
    assert policy.delay(0, 2.0) == 2.0 and RetryPolicy(max_retry_after=1).delay(0, 2.0) is None
    assert math.isclose(policy.delay(1, None), 1.0)


def _completion(text: str) -> Completion:
    return Completion(
        choices=(Choice(text=text, finish_reason="stop"),),
        usage=Usage(prompt_tokens=1, completion_tokens=1),
        latency_s=0.0,
    )
