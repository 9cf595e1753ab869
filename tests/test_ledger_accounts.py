"""One ledger answers what a run spent three ways (``spent``, ``usage``, ``cost``): for any sequence of
reservations settled, billed at their worst case, failed or released, in the root or a child slice, the three
agree with each other and with a plain sum of what was settled."""

from __future__ import annotations

import math
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from thinkloop import Budget, Price, Usage
from thinkloop.runtime.budget import BudgetLedger
from thinkloop.types import RunUsage, UsageTally

PRICE = Price(input=2.0, output=8.0, cached_input=0.5)

usages = st.builds(
    Usage,
    prompt_tokens=st.none() | st.integers(0, 50),
    completion_tokens=st.none() | st.integers(0, 50),
    reasoning_tokens=st.none() | st.integers(0, 80),
    cached_prompt_tokens=st.none() | st.integers(0, 80),
    reasoning_tokens_estimated=st.booleans(),
)
# How a reserved call ends: answered (its usage, known or not), sent and failed with nothing billed, or not sent.
endings = st.one_of(st.tuples(st.just("answered"), usages), st.just(("failed", None)), st.just(("released", None)))
steps = st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.integers(1, 3), endings), max_size=25)


@settings(max_examples=150, deadline=None)
@given(steps, st.booleans())
def test_usage_spent_and_cost_agree_for_any_sequence_of_reserve_settle_release(
    script: list[tuple[bool, int, int, tuple[str, Usage | None]]], priced: bool
) -> None:
    root = BudgetLedger(Budget(price=PRICE) if priced else Budget())
    child = root.child(Budget(tokens=10**9))
    expected = RunUsage()
    tokens = calls = 0
    dollars = 0.0
    charged = False
    for in_child, max_tokens, n, (ending, usage) in script:
        ledger = child if in_child else root
        reservation = ledger.reserve(prompt_tokens=5, max_tokens=max_tokens, n=n)
        if ending == "released":
            ledger.release(reservation)
            continue
        ledger.settle(reservation, usage)
        calls += 1
        if usage is None:
            expected = expected.model_copy(
                update={"calls": expected.calls + 1, "failed_calls": expected.failed_calls + 1}
            )
            continue
        expected = expected.add(usage)
        if usage.known:
            tokens += usage.total_tokens or 0
            dollars += (PRICE.cost(usage) or 0.0) if priced else 0.0
        else:  # unknown usage: the worst case stays billed
            tokens += reservation.tokens
            dollars += reservation.dollars
        charged = charged or priced

    for ledger in (root, child):  # usage and cost are the run's, asked from any ledger of its tree
        assert ledger.usage == expected
        assert ledger.cost == (root.billed.dollars if charged else None)
    assert (root.billed.tokens, root.billed.calls) == (tokens, calls)
    assert math.isclose(root.billed.dollars, dollars, rel_tol=1e-12, abs_tol=1e-12)
    assert root.usage.calls == root.billed.calls  # every settled call is counted once, in both
    assert (root.reserved.tokens, root.reserved.calls, child.reserved.calls) == (0, 0, 0)
    assert not root.in_flight()


def test_the_tally_has_run_usage_fields_by_name() -> None:
    assert [f.name for f in fields(UsageTally)] == list(RunUsage.model_fields)
    tally = UsageTally()
    tally.add(Usage(prompt_tokens=3, completion_tokens=4, reasoning_tokens=9, cached_prompt_tokens=1))
    tally.add_failed()
    assert tally.total() == RunUsage(
        calls=2, failed_calls=1, prompt_tokens=3, completion_tokens=4, reasoning_tokens=4, cached_prompt_tokens=1
    )
