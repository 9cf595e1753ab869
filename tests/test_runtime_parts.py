"""The run context's parts: sinks that write nodes from their parts, the run-wide usage a sub-strategy's
context reports, and the names kept for callers of the earlier ones."""

from __future__ import annotations

import pytest

from thinkloop import Budget, ChatRequest, Engine, Outcome, RunContext, ScriptedBackend, Strategy
from thinkloop.runtime.budget import BudgetLedger
from thinkloop.runtime.graph import Node
from thinkloop.runtime.trace import NodeEvent, RunFinished, RunStarted

REQUEST = ChatRequest.of("2+2?", max_tokens=8)


class TwoCalls(Strategy):
    """One call in the run's own context and one in a child's slice of the budget."""

    name = "two"

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, object] = {}

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        node, _ = await ctx.call(REQUEST, parents=[parent])
        child = ctx.child(Budget(tokens=500))
        await child.call(REQUEST, parents=[node.id])
        self.seen.update(
            child_usage=child.usage,
            usage=ctx.usage,
            child_graph=child.graph is ctx.graph,
            child_spent=child.ledger.billed.calls,
            spent=ctx.ledger.billed.calls,
        )
        return Outcome(candidate=None, stop_reason="completed")


@pytest.mark.anyio
async def test_a_sink_with_write_node_gets_nodes_from_their_parts_and_others_get_events() -> None:
    written: list[tuple[str, Node, float]] = []
    events: list[object] = []

    class NodeSink:
        def __init__(self) -> None:
            self.other: list[object] = []

        def __call__(self, event: object) -> None:
            self.other.append(event)

        def write_node(self, run_id: str, node: Node, ts: float) -> None:
            written.append((run_id, node, ts))

    node_sink = NodeSink()
    strategy = TwoCalls()
    result = await Engine(ScriptedBackend(lambda request: "Answer: 4")).run(
        strategy, "2+2?", budget=Budget(tokens=10_000), sinks=[node_sink, events.append], run_id="r1"
    )
    nodes = [e.node for e in events if isinstance(e, NodeEvent)]
    assert [(run_id, node) for run_id, node, _ in written] == [("r1", node) for node in nodes]
    assert len(nodes) == 1 + 2 * 2  # the question, and each call running then done
    assert [type(e) for e in node_sink.other] == [RunStarted, RunFinished]  # no node went through __call__
    assert [n.status for n in result.graph.nodes()] == ["done"] * 3


@pytest.mark.anyio
async def test_a_child_context_reports_the_runs_usage_and_spends_its_own_slice() -> None:
    strategy = TwoCalls()
    result = await Engine(ScriptedBackend(lambda request: "Answer: 4")).run(
        strategy, "2+2?", budget=Budget(tokens=10_000)
    )
    seen = strategy.seen
    assert seen["child_usage"] == seen["usage"] == result.usage and result.usage.calls == 2
    assert (seen["child_spent"], seen["spent"], result.spent["calls"]) == (1, 2, 2)
    assert seen["child_graph"] is True


@pytest.mark.anyio
async def test_the_earlier_names_still_answer() -> None:
    class Old(Strategy):
        name = "old"

        async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
            with pytest.warns(DeprecationWarning, match="capture"):
                called, failure = await ctx.attempt(lambda: ctx.call(REQUEST, parents=[parent]))
            assert failure is None and called is not None
            node, completion = called
            return Outcome(candidate=ctx.candidate(node, completion.choices[0]), stop_reason="completed")

    result = await Engine(ScriptedBackend(lambda request: "Answer: 4")).run(Old(), "q", budget=Budget(tokens=100))
    assert result.answer == "4"
    ledger = BudgetLedger(Budget(calls=1))
    assert ledger.spent() is ledger.exhausted() is False
    ledger.settle(ledger.reserve(prompt_tokens=1, max_tokens=1), None)
    assert ledger.spent() is ledger.exhausted() is True
