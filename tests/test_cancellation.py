"""No task outlives its run: a run that stops (a verifier accepts, the deadline passes, the caller cancels)
cancels every outstanding branch promptly and records it as cancelled.

Every test runs on asyncio and on trio (the ``anyio_backend`` fixture in conftest). The scripted backend's
reply function counts the branches that are inside it right now (``live``), with ``try/finally``, so a
branch that kept running after the run returned would show up.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from support import AcceptAnswer
from thinkloop import (
    Budget,
    Candidate,
    Capabilities,
    ChainOfThought,
    ChatRequest,
    Engine,
    Outcome,
    RunContext,
    ScriptedBackend,
    Strategy,
    graph_from_events,
    load_trace,
)
from thinkloop.runtime.trace import RunFinished

pytestmark = pytest.mark.anyio

FOREVER = 3600.0


class SleepyModel:
    """A scripted model whose branches sleep: ``fast`` ones for a moment, the rest for an hour.

    ``fast`` maps a branch number (in the prompt) to its reply; with ``first_arrival`` the reply goes to
    whichever request arrives first instead (trio schedules new tasks in no fixed order).
    """

    def __init__(
        self, fast: dict[int, str], *, capabilities: Capabilities | None = None, first_arrival: bool = False
    ) -> None:
        self.fast = fast
        self.first_arrival = first_arrival
        self.live = 0
        self.finished = 0
        self.backend = ScriptedBackend(self.reply, capabilities=capabilities)

    async def reply(self, request: ChatRequest) -> str:
        index = int(request.messages[-1].content.split()[1])
        if self.first_arrival:
            index = len(self.backend.requests) - 1
        self.live += 1
        try:
            await anyio.sleep(0.01 if index in self.fast else FOREVER)
            self.finished += 1
            return self.fast.get(index, "Answer: 0")
        finally:
            self.live -= 1


class FirstAccepted(Strategy):
    """Launches every branch at once and cancels the rest as soon as the verifier accepts one."""

    name = "first-accepted"

    def __init__(self, branches: int, *, first: int = 0) -> None:
        super().__init__()
        self.branches = range(first, first + branches)
        self.ctx: RunContext | None = None

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        self.ctx = ctx
        accepted: list[Candidate] = []

        async def branch(index: int) -> None:
            request = ChatRequest.of(f"branch {index}", max_tokens=20)
            node, completion = await ctx.call(request, parents=[parent], strategy=self.name)
            candidate = await ctx.verify(ctx.candidate(node, completion.choices[0]), strategy=self.name)
            if candidate.accepted:
                accepted.append(candidate)
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for index in self.branches:
                group.start_soon(branch, index)
        if accepted:
            return Outcome(candidate=accepted[0], stop_reason="accepted")
        return Outcome(candidate=ctx.best, stop_reason="completed")


def _statuses(graph, kind: str = "generate") -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes():
        if node.kind == kind:
            counts[node.status] = counts.get(node.status, 0) + 1
    return counts


async def test_when_the_verifier_accepts_no_branch_still_runs(tmp_path: Path):
    model = SleepyModel({7: "Answer: 42"})
    strategy = FirstAccepted(branches=20)
    path = tmp_path / "trace.jsonl"

    with anyio.fail_after(30):
        result = await strategy.run("q", backend=model.backend, verifier=AcceptAnswer("42"), trace_path=path)

    assert model.live == 0 and model.backend.in_flight == 0
    assert result.stop_reason == "accepted"
    assert result.answer == "42"
    assert _statuses(result.graph) == {"done": 1, "cancelled": 19}
    assert not result.graph.by_status("running")
    # The trace says the same, and nothing was left reserved.
    assert graph_from_events(load_trace(path)) == result.graph
    ledger = strategy.ctx.ledger
    assert (ledger.reserved.tokens, ledger.reserved.calls) == (0, 0)
    # Nothing wakes up later either.
    requests = len(model.backend.requests)
    await anyio.sleep(0.05)
    assert (model.live, model.finished, len(model.backend.requests)) == (0, 1, requests)


async def test_branches_waiting_for_the_limiter_are_cancelled_unbilled():
    # Four at a time: four are sent (the first to arrive wins), sixteen wait for the limiter and never go out,
    # not even the one the winner's slot is handed to as the run stops.
    model = SleepyModel({0: "Answer: 42"}, capabilities=Capabilities(max_concurrency=4), first_arrival=True)
    strategy = FirstAccepted(branches=20)

    with anyio.fail_after(30):
        result = await strategy.run("q", backend=model.backend, verifier=AcceptAnswer("42"))

    assert result.stop_reason == "accepted"
    assert model.live == 0
    assert len(model.backend.requests) == 4
    assert _statuses(result.graph) == {"done": 1, "cancelled": 19}
    ledger = strategy.ctx.ledger
    # Sent-then-cancelled calls may have been billed by the server, so they stay billed at their worst case;
    # calls that never left are released.
    assert ledger.billed.calls == 4
    assert (ledger.reserved.tokens, ledger.reserved.calls) == (0, 0)


async def test_a_deadline_stops_the_run_promptly_with_the_best_answer_so_far():
    model = SleepyModel({3: "Answer: 17"})  # one branch answers (rejected), the rest hang
    strategy = FirstAccepted(branches=10)

    with anyio.fail_after(30):  # a hang guard, not a timing assertion
        result = await strategy.run(
            # 2 s: ample for the 10 ms branch to answer first even on a loaded CI machine
            "q",
            backend=model.backend,
            verifier=AcceptAnswer("42"),
            budget=Budget(seconds=2.0),
        )

    assert result.stop_reason == "deadline"
    assert result.answer == "17"
    assert model.live == 0
    assert _statuses(result.graph) == {"done": 1, "cancelled": 9}


async def test_a_deadline_on_a_single_slow_call():
    model = SleepyModel({})
    with anyio.fail_after(30):
        result = await ChainOfThought().run("branch 0", backend=model.backend, budget=Budget(seconds=0.2))
    assert result.stop_reason == "deadline"
    assert result.answer is None
    assert model.live == 0
    assert _statuses(result.graph) == {"cancelled": 1}


async def test_caller_cancellation_leaves_no_task_and_ends_the_trace(tmp_path: Path):
    model = SleepyModel({})
    strategy = FirstAccepted(branches=12)
    path = tmp_path / "trace.jsonl"

    with anyio.fail_after(30):
        with anyio.move_on_after(0.1) as scope:
            await strategy.run("q", backend=model.backend, trace_path=path)

    assert scope.cancelled_caught
    assert model.live == 0
    events = load_trace(path)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].stop_reason == "cancelled"
    assert _statuses(graph_from_events(events)) == {"cancelled": 12}
    ledger = strategy.ctx.ledger
    assert (ledger.reserved.tokens, ledger.reserved.calls) == (0, 0)


async def test_one_engine_runs_many_questions_each_cancelled_independently():
    # Half the runs are accepted at once; the other half hit their own deadline. Neither disturbs the other.
    model = SleepyModel({0: "Answer: 42"})
    engine = Engine(model.backend)
    results: dict[int, object] = {}

    async def one(number: int) -> None:
        accepting = number % 2 == 0
        strategy = FirstAccepted(branches=1) if accepting else FirstAccepted(branches=3, first=1)
        budget = Budget() if accepting else Budget(seconds=0.2)
        results[number] = await engine.run(strategy, f"q{number}", verifier=AcceptAnswer("42"), budget=budget)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(one, number)

    assert model.live == 0
    for number, result in results.items():
        assert result.stop_reason == ("accepted" if number % 2 == 0 else "deadline")
        assert len({n.id for n in result.graph.nodes()}) == len(result.graph)
