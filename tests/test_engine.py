"""The engine: one capacity limiter per backend, many questions at once, and a stop reason for every run."""

from __future__ import annotations

import json
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
    ConfigurationError,
    Direct,
    Engine,
    Outcome,
    RunContext,
    ScriptedBackend,
    Strategy,
    Verdict,
    load_trace,
)
from thinkloop.runtime.trace import RunFinished, RunStarted

pytestmark = pytest.mark.anyio


def echo_number(latency: float = 0.01, capabilities: Capabilities | None = None) -> ScriptedBackend:
    """Answers each question ``"question N"`` with ``N``, after a short sleep so calls overlap."""

    async def reply(request: ChatRequest) -> str:
        await anyio.sleep(latency)
        return f"Answer: {request.messages[-1].content.split()[-1]}"

    return ScriptedBackend(reply, capabilities=capabilities)


# --- many questions, one engine -----------------------------------------------------------------------
async def test_one_engine_runs_fifty_questions_concurrently_within_its_limit():
    backend = echo_number()
    engine = Engine(backend, max_concurrency=4)
    results = {}

    async def ask(number: int) -> None:
        results[number] = await engine.run(Direct(), f"question {number}")

    async with anyio.create_task_group() as group:
        for number in range(50):
            group.start_soon(ask, number)

    assert backend.max_in_flight == 4  # concurrent, and never more than the limit
    assert len(backend.requests) == 50
    assert len({r.run_id for r in results.values()}) == 50
    for number, result in results.items():
        # Each run keeps its own graph, totals and answer.
        assert result.answer == str(number)
        assert result.usage.calls == 1
        assert [n.kind for n in result.graph.nodes()] == ["question", "generate"]
        assert result.graph.node(0).text == f"question {number}"


async def test_the_limit_comes_from_the_backend_capabilities_by_default():
    backend = echo_number(capabilities=Capabilities(max_concurrency=3))
    engine = Engine(backend)
    async with anyio.create_task_group() as group:
        for number in range(12):
            group.start_soon(engine.run, Direct(), f"question {number}")
    assert backend.max_in_flight == 3


class TwoModels(Strategy):
    """Calls the run's backend and a second one concurrently, several times each."""

    name = "two-models"

    def __init__(self, other: ScriptedBackend) -> None:
        super().__init__()
        self.other = other

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        async def call(backend: ScriptedBackend | None) -> None:
            await ctx.call(ChatRequest.of("question 1", max_tokens=5), parents=[parent], backend=backend)

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(call, None)
                group.start_soon(call, self.other)
        return Outcome(candidate=None, stop_reason="completed")


async def test_each_backend_has_its_own_limiter():
    main, other = echo_number(), echo_number(capabilities=Capabilities(max_concurrency=2))
    result = await Engine(main, max_concurrency=1).run(TwoModels(other), "q")
    assert (main.max_in_flight, other.max_in_flight) == (1, 2)
    assert result.usage.calls == 12


# --- stop reasons --------------------------------------------------------------------------------------------
async def test_completed_without_a_verifier():
    result = await ChainOfThought(max_rounds=3).run("question 5", backend=echo_number())
    assert (result.stop_reason, result.answer, result.usage.calls) == ("completed", "5", 1)


async def test_accepted_after_feedback_and_the_path_to_the_answer():
    backend = ScriptedBackend(["Answer: 40", "Answer: 41", "Answer: 42", "Answer: 43"])
    verifier = AcceptAnswer("42")
    result = await ChainOfThought(max_rounds=5).run("What is 6 * 7?", backend=backend, verifier=verifier)

    assert result.stop_reason == "accepted"
    assert result.answer == "42"
    assert verifier.seen == ["40", "41", "42"]
    # Each round builds on the one before: question -> round 0 -> round 1 -> round 2.
    path = result.answer_path()
    assert [n.kind for n in path] == ["question", "generate", "generate", "generate"]
    assert [n.answer for n in path[1:]] == ["40", "41", "42"]
    assert [n.depth for n in path] == [0, 1, 2, 3]
    assert result.graph.depth() == 4  # the last verify node hangs under the accepted answer
    # The verifier's feedback went back to the model.
    assert backend.requests[1].messages[-1].content.startswith("40 is not right")


async def test_max_rounds_when_nothing_is_accepted():
    backend = ScriptedBackend(["Answer: 1", "Answer: 2"])
    result = await ChainOfThought(max_rounds=2).run("q", backend=backend, verifier=AcceptAnswer("42"))
    assert result.stop_reason == "max_rounds"
    assert result.answer in {"1", "2"}
    assert result.candidate.score == 0.25


async def test_a_failing_backend_is_an_error_stop_with_the_reason():
    def broken(request: ChatRequest) -> str:
        raise ConnectionResetError("the model server went away")

    result = await ChainOfThought().run("q", backend=ScriptedBackend(broken))
    assert result.stop_reason == "error"
    assert result.answer is None
    assert "the model server went away" in result.error
    (failed,) = result.graph.by_status("failed")
    assert "ConnectionResetError" in failed.error


class Buggy(Strategy):
    name = "buggy"

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        await ctx.call(ChatRequest.of(question, max_tokens=5), parents=[parent])
        raise ZeroDivisionError("a bug in the strategy")


async def test_a_bug_in_a_strategy_propagates_and_the_trace_still_ends(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    with pytest.raises(ZeroDivisionError, match="a bug in the strategy"):
        await Buggy().run("q", backend=echo_number(), trace_path=path)
    events = load_trace(path)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].stop_reason == "error"
    assert "ZeroDivisionError" in events[-1].error


# --- verifiers that call a model are charged to the same budget ---------------------------------------------
class ModelJudge:
    """Asks the model whether the answer is right; its calls go through the run's context."""

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        assert ctx is not None
        request = ChatRequest.of(f"Is {candidate.answer} right? question 42", max_tokens=5)
        _, completion = await ctx.call(request, parents=[candidate.node_id], kind="evaluate", strategy="judge")
        return Verdict.accept() if "42" in completion.text else Verdict.reject("no")


async def test_a_verifiers_model_calls_are_budgeted_and_traced(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    result = await ChainOfThought(max_rounds=3).run(
        "question 7", backend=echo_number(), verifier=ModelJudge(), trace_path=path
    )
    assert result.stop_reason == "accepted"
    assert result.usage.calls == 2  # the answer and the judge
    kinds = [e.node.kind for e in load_trace(path)[1:-1] if e.node.status == "done"]
    assert kinds == ["question", "generate", "evaluate", "verify"]

    capped = await ChainOfThought(max_rounds=3).run(
        "question 7", backend=echo_number(), verifier=ModelJudge(), budget=Budget(calls=1)
    )
    assert capped.usage.calls == 1
    assert capped.stop_reason == "budget"
    assert capped.answer == "7"  # the unverified answer is still returned


# --- entry points and results --------------------------------------------------------------------------------
def test_run_sync_and_the_result_document(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    result = ChainOfThought().run_sync("question 9", backend=echo_number(0.0), trace_path=path)
    assert result.answer == "9"
    assert result.trace_path == str(path)
    document = json.loads(json.dumps(result.to_json_dict()))
    assert document["answer"] == "9"
    assert [n["kind"] for n in document["graph"]["nodes"]] == ["question", "generate"]
    started = load_trace(path)[0]
    assert isinstance(started, RunStarted)
    assert (started.strategy, started.model, started.question) == ("cot", "scripted", "question 9")


def test_run_needs_a_backend_or_an_engine():
    with pytest.raises(ConfigurationError, match="needs a backend= or an engine="):
        Direct().run_sync("q")


async def test_sinks_receive_every_event():
    events: list[object] = []
    await Engine(echo_number()).run(Direct(), "question 3", sinks=[events.append])
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].answer == "3"
