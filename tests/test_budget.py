"""Hard budgets: what a run is billed never exceeds its budget, however many branches are in flight.

The properties run a fan-out strategy (up to 64 concurrent ``ctx.call`` branches with random ``max_tokens``
and ``n``) on a scripted backend whose replies have random lengths and random small latencies, under random
token and call limits, and check the ledger, the run's usage and the backend's own record of what was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from thinkloop import (
    Budget,
    BudgetExhausted,
    Candidate,
    ChainOfThought,
    ChatRequest,
    ConfigurationError,
    Outcome,
    Price,
    RunContext,
    ScriptedBackend,
    Strategy,
    Usage,
    Verdict,
)
from thinkloop.runtime.budget import BudgetLedger

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- a workload: many concurrent branches ----------------------------------------------------------------
@dataclass(frozen=True)
class Branch:
    max_tokens: int
    n: int
    lengths: tuple[int, ...]
    """Words in each reply the branch gets (cycled over its ``n`` choices)."""
    latency: float


branches = st.builds(
    Branch,
    max_tokens=st.integers(1, 64),
    n=st.integers(1, 4),
    lengths=st.lists(st.integers(0, 100), min_size=1, max_size=4).map(tuple),
    latency=st.sampled_from([0.0, 0.0, 0.0005, 0.002]),
)
workloads = st.lists(branches, min_size=1, max_size=64)
token_limits = st.none() | st.integers(1, 300) | st.integers(300, 3000)
call_limits = st.none() | st.integers(1, 16) | st.integers(16, 64)


def workload_backend(workload: list[Branch]) -> ScriptedBackend:
    """Replies of each branch's scripted lengths, after its latency; the branch id is in the prompt."""
    served: dict[int, int] = {}

    async def reply(request: ChatRequest) -> str:
        index = int(request.messages[-1].content.split()[1])
        branch = workload[index]
        count = served.get(index, 0)
        served[index] = count + 1
        await anyio.sleep(branch.latency)
        return " ".join(["word"] * branch.lengths[count % len(branch.lengths)])

    return ScriptedBackend(reply)


class FanOut(Strategy):
    """Every branch at once in one task group; a branch the budget refuses just stops."""

    name = "fanout"

    def __init__(self, workload: list[Branch], *, child_budget: Budget | None = None) -> None:
        super().__init__()
        self.workload = workload
        self.child_budget = child_budget
        self.ctx: RunContext | None = None
        self.child_ctx: RunContext | None = None
        self.refused: list[str] = []

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        self.ctx = ctx
        child = ctx.child(self.child_budget) if self.child_budget is not None else ctx
        self.child_ctx = child

        async def branch(index: int, spec: Branch) -> None:
            # With a child budget, odd branches spend the child's slice, even ones the parent's.
            where = child if index % 2 else ctx
            request = ChatRequest.of(f"branch {index}", max_tokens=spec.max_tokens, n=spec.n)
            try:
                node, completion = await where.call(request, parents=[parent], strategy=self.name)
            except BudgetExhausted as exc:
                self.refused.append(exc.resource)
                return
            where.offer(where.candidate(node, completion.choices[0]))

        async with anyio.create_task_group() as group:
            for index, spec in enumerate(self.workload):
                group.start_soon(branch, index, spec)
        return Outcome(candidate=ctx.best, stop_reason="budget" if self.refused else "completed")


def _node_tokens(result) -> int:
    return sum(n.usage.total_tokens for n in result.graph.nodes() if n.usage is not None)


# --- property (a): billed never exceeds the budget -------------------------------------------------------
@pytest.mark.anyio
@PROPERTY
@given(workload=workloads, tokens=token_limits, calls=call_limits)
async def test_concurrent_branches_never_overspend(workload: list[Branch], tokens: int | None, calls: int | None):
    backend = workload_backend(workload)
    strategy = FanOut(workload)
    budget = Budget(tokens=tokens, calls=calls)

    result = await strategy.run("q", backend=backend, budget=budget)

    ledger = strategy.ctx.ledger
    billed = result.usage.total_tokens
    assert billed == ledger.billed.tokens == _node_tokens(result)
    if tokens is not None:
        assert billed <= tokens
    assert result.usage.calls == len(backend.requests) == ledger.billed.calls
    if calls is not None:
        assert len(backend.requests) <= calls
    # Every reservation is settled or released.
    assert (ledger.reserved.tokens, ledger.reserved.calls, ledger.reserved.dollars) == (0, 0, 0.0)
    assert ledger.overrun_tokens == 0
    # Each request went out with max_tokens clamped to at most what the branch asked for, and the
    # backend held to it.
    for request in backend.requests:
        index = int(request.messages[-1].content.split()[1])
        assert request.max_tokens <= workload[index].max_tokens
    for node in result.graph.nodes():
        if node.completion is not None:
            assert all(len(c.text.split()) <= node.request.max_tokens for c in node.completion.choices)
    # Every branch either ran or was refused by the budget, and the refusals are recorded on the graph.
    assert len(backend.requests) + len(strategy.refused) == len(workload)
    refused_nodes = [n for n in result.graph.by_status("failed") if n.data and "budget" in n.data]
    assert len(refused_nodes) == len(strategy.refused)
    assert result.stop_reason == ("budget" if strategy.refused else "completed")
    event(f"refused by {sorted(set(strategy.refused))}")
    # Not needlessly stingy: without a token limit only the call limit refuses.
    if tokens is None:
        assert len(backend.requests) == min(len(workload), calls or len(workload))


@pytest.mark.anyio
@PROPERTY
@given(
    workload=workloads,
    parent_tokens=st.integers(1, 3000),
    child_tokens=st.integers(1, 3000),
    parent_calls=call_limits,
    child_calls=call_limits,
)
async def test_nested_budget_slices_hold_in_child_and_parent(
    workload: list[Branch],
    parent_tokens: int,
    child_tokens: int,
    parent_calls: int | None,
    child_calls: int | None,
):
    backend = workload_backend(workload)
    strategy = FanOut(workload, child_budget=Budget(tokens=child_tokens, calls=child_calls))

    result = await strategy.run("q", backend=backend, budget=Budget(tokens=parent_tokens, calls=parent_calls))

    parent, child = strategy.ctx.ledger, strategy.child_ctx.ledger
    assert child.parent is parent
    assert child.billed.tokens <= min(child_tokens, parent_tokens)
    assert parent.billed.tokens <= parent_tokens
    # The child's spending is part of the parent's, and the parent's bill is the whole run's.
    assert parent.billed.tokens == result.usage.total_tokens >= child.billed.tokens
    if child_calls is not None:
        assert child.billed.calls <= child_calls
    if parent_calls is not None:
        assert parent.billed.calls <= parent_calls
    assert parent.billed.calls == len(backend.requests)
    for ledger in (parent, child):
        assert (ledger.reserved.tokens, ledger.reserved.calls) == (0, 0)


# --- the ledger, call by call -----------------------------------------------------------------------------
def test_reserve_clamps_max_tokens_to_what_is_left():
    ledger = BudgetLedger(Budget(tokens=100))
    reservation = ledger.reserve(prompt_tokens=40, max_tokens=500)
    assert reservation.max_tokens == 60
    assert reservation.tokens == 100
    assert ledger.tokens_left() == 0


def test_a_request_with_n_choices_reserves_for_all_of_them():
    ledger = BudgetLedger(Budget(tokens=100))
    reservation = ledger.reserve(prompt_tokens=10, max_tokens=50, n=3)
    assert reservation.max_tokens == 30  # (100 - 10) // 3
    assert reservation.tokens == 10 + 3 * 30


def test_reserve_without_max_tokens_takes_what_fits_and_needs_a_limit_otherwise():
    assert BudgetLedger(Budget(tokens=50)).reserve(prompt_tokens=20, max_tokens=None).max_tokens == 30
    with pytest.raises(ConfigurationError, match="a call needs max_tokens when the budget has no token limit"):
        BudgetLedger(Budget(calls=3)).reserve(prompt_tokens=20, max_tokens=None)


def test_a_call_that_cannot_fit_is_refused_with_the_numbers():
    ledger = BudgetLedger(Budget(tokens=100))
    ledger.reserve(prompt_tokens=90, max_tokens=5)
    with pytest.raises(BudgetExhausted, match=re.escape("needs at least 11 tokens but 5 are left")) as info:
        ledger.reserve(prompt_tokens=10, max_tokens=5)
    assert info.value.resource == "tokens"
    # min_tokens: a call that would be clamped below what it needs is refused, not sent uselessly short.
    with pytest.raises(BudgetExhausted, match=re.escape("needs at least 14 tokens but 5 are left")):
        BudgetLedger(Budget(tokens=5)).reserve(prompt_tokens=4, max_tokens=50, min_tokens=10)


def test_call_and_time_limits_refuse_the_next_call():
    ledger = BudgetLedger(Budget(calls=1))
    ledger.reserve(prompt_tokens=1, max_tokens=1)
    with pytest.raises(BudgetExhausted, match=re.escape("the call budget of 1 calls is spent")) as info:
        ledger.reserve(prompt_tokens=1, max_tokens=1)
    assert info.value.resource == "calls"
    timed = BudgetLedger(Budget(seconds=1.0), started=0.0)  # started long ago
    with pytest.raises(BudgetExhausted, match=re.escape("the time budget of 1.0 s is spent")):
        timed.reserve(prompt_tokens=1, max_tokens=1)


def test_settle_bills_real_usage_and_unknown_usage_keeps_the_worst_case():
    ledger = BudgetLedger(Budget(tokens=1000))
    first = ledger.reserve(prompt_tokens=50, max_tokens=100)
    ledger.settle(first, Usage(prompt_tokens=30, completion_tokens=20))
    assert (ledger.billed.tokens, ledger.reserved.tokens) == (50, 0)
    second = ledger.reserve(prompt_tokens=50, max_tokens=100)
    ledger.settle(second, Usage())  # the server did not say: never read as free
    assert ledger.billed.tokens == 50 + 150
    ledger.settle(second, Usage(prompt_tokens=1, completion_tokens=1))  # settling twice is a no-op
    assert ledger.billed.tokens == 200
    third = ledger.reserve(prompt_tokens=50, max_tokens=100)
    ledger.release(third)
    assert (ledger.billed.tokens, ledger.billed.calls, ledger.reserved.tokens) == (200, 2, 0)


def test_a_server_ignoring_max_tokens_is_reported_as_overrun():
    ledger = BudgetLedger(Budget(tokens=100))
    reservation = ledger.reserve(prompt_tokens=10, max_tokens=10)
    ledger.settle(reservation, Usage(prompt_tokens=10, completion_tokens=50))
    assert ledger.overrun_tokens == 40


def test_a_child_slice_is_bounded_by_its_parent():
    parent = BudgetLedger(Budget(tokens=100))
    child = parent.child(Budget(tokens=500))
    assert child.tokens_left() == 100
    reservation = child.reserve(prompt_tokens=10, max_tokens=1000)
    assert reservation.max_tokens == 90
    assert parent.reserved.tokens == 100
    child.settle(reservation, Usage(prompt_tokens=10, completion_tokens=5))
    assert parent.billed.tokens == child.billed.tokens == 15
    small = parent.child(Budget(tokens=20))
    assert small.reserve(prompt_tokens=5, max_tokens=1000).max_tokens == 15


# --- bad budgets: a clear error before any call ---------------------------------------------------------
@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"tokens": 0}, "invalid budget: tokens: Input should be greater than 0 (got 0)"),
        ({"tokens": -10}, "invalid budget: tokens: Input should be greater than 0 (got -10)"),
        ({"calls": -1}, "invalid budget: calls: Input should be greater than 0 (got -1)"),
        ({"seconds": -0.5}, "invalid budget: seconds: Input should be greater than 0 (got -0.5)"),
        (
            {"dollars": -1.0, "price": Price(input=1, output=1)},
            "invalid budget: dollars: Input should be greater than 0 (got -1.0)",
        ),
        (
            {"dollars": 5.0},
            "invalid budget: dollars=5.0 needs a price for the model: pass price=Price(input=..., output=...)",
        ),
        ({"token": 5}, "invalid budget: unknown limit 'token'"),
    ],
)
def test_budget_make_names_the_bad_limit(limits: dict, message: str):
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        Budget.make(**limits)


@pytest.mark.parametrize(
    ("limits", "field"),
    [({"tokens": 0}, "tokens"), ({"tokens": -3}, "tokens"), ({"calls": 0}, "calls"), ({"dollars": 1.0}, "dollars")],
)
def test_budget_constructor_raises_validation_error_naming_the_field(limits: dict, field: str):
    with pytest.raises(ValidationError, match=field):
        Budget(**limits)


def test_a_bad_budget_fails_before_any_call():
    backend = ScriptedBackend(["Answer: 1"])
    with pytest.raises(ConfigurationError, match="tokens"):
        ChainOfThought().run_sync("q", backend=backend, budget=Budget.make(tokens=-1))
    with pytest.raises(ValidationError, match="dollars"):
        ChainOfThought().run_sync("q", backend=backend, budget=Budget(dollars=0.01))
    assert backend.requests == []


def test_price_costs_usage_with_cached_input_and_unknown_usage():
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    usage = Usage(prompt_tokens=1000, cached_prompt_tokens=400, completion_tokens=100)
    assert price.cost(usage) == pytest.approx((600 * 2.0 + 400 * 0.5 + 100 * 8.0) / 1e6)
    assert price.cost(Usage()) is None


# --- dollars -----------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_a_dollar_budget_is_never_overspent():
    price = Price(input=1.0, output=4.0)  # per million tokens
    dollars = 0.002
    workload = [Branch(max_tokens=60, n=1, lengths=(50,), latency=0.001) for _ in range(40)]
    backend = workload_backend(workload)
    strategy = FanOut(workload)

    result = await strategy.run("q", backend=backend, budget=Budget(dollars=dollars, price=price))

    ledger = strategy.ctx.ledger
    assert 0 < len(backend.requests) < len(workload)
    assert set(strategy.refused) == {"dollars"}
    assert result.stop_reason == "budget"
    expected = sum(price.cost(n.usage) for n in result.graph.nodes() if n.usage is not None)
    assert result.cost == pytest.approx(expected)
    assert result.cost <= dollars + 1e-12
    assert ledger.billed.dollars <= dollars + 1e-12
    assert ledger.reserved.dollars == pytest.approx(0.0, abs=1e-15)


def test_a_spent_dollar_budget_refuses_with_the_amounts():
    ledger = BudgetLedger(Budget(dollars=1e-6, price=Price(input=1.0, output=1.0)))
    with pytest.raises(BudgetExhausted, match=re.escape("needs at least $1.1e-05 but $1e-06 are left")) as info:
        ledger.reserve(prompt_tokens=10, max_tokens=10)
    assert info.value.resource == "dollars"


def test_free_output_with_a_dollar_limit_is_bounded_by_the_prompt_only():
    ledger = BudgetLedger(Budget(dollars=1e-5, price=Price(input=1.0, output=0.0)))
    assert ledger.reserve(prompt_tokens=5, max_tokens=100).max_tokens == 100
    with pytest.raises(BudgetExhausted) as info:
        ledger.reserve(prompt_tokens=50, max_tokens=100)
    assert info.value.resource == "dollars"


# --- a run stopped by its budget still answers --------------------------------------------------------------
class ScoreByRound:
    """Rejects everything, scoring the rounds 0.3, 0.9, 0.1, ... so the best is not the last."""

    def __init__(self) -> None:
        self.scores = iter([0.3, 0.9, 0.1, 0.2, 0.4, 0.5])

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        return Verdict.reject("not yet", score=next(self.scores))


@pytest.mark.anyio
# Token bounds per round: 28 + 20 for the first, 133 + 20 after; billed 6 then 28 a round. 190 tokens fit
# three rounds (62 billed), and the fourth needs at least 134 of the 128 left.
@pytest.mark.parametrize("budget", [Budget(calls=3), Budget(tokens=190)])
async def test_a_run_stopped_by_the_budget_returns_the_best_answer_so_far(budget: Budget):
    backend = ScriptedBackend([f"Answer: {n}" for n in range(10)])
    strategy = ChainOfThought(max_rounds=10, max_tokens=20, system_prompt="s")

    result = await strategy.run("What is it?", backend=backend, budget=budget, verifier=ScoreByRound())

    assert len(backend.requests) == 3
    assert result.stop_reason == "budget"
    assert result.answer == "1"
    assert result.candidate.score == 0.9
    assert result.graph.path_to(result.candidate.node_id)[-1].answer == "1"


class Unguarded(Strategy):
    """Lets BudgetExhausted escape: the engine still answers with the best offered candidate."""

    name = "unguarded"

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        while True:
            node, completion = await ctx.call(ChatRequest.of(question, max_tokens=5), parents=[parent])
            ctx.offer(ctx.candidate(node, completion.choices[0]))


@pytest.mark.anyio
async def test_the_engine_turns_an_escaped_budget_error_into_a_budget_stop():
    backend = ScriptedBackend(lambda request: f"Answer: {len(backend.requests)}")
    result = await Unguarded().run("q", backend=backend, budget=Budget(calls=4))
    assert result.stop_reason == "budget"
    assert result.answer == "1"  # the first offer; later ones are no better
    assert result.usage.calls == 4
