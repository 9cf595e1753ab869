"""Typed failures: what :meth:`RunContext.capture` returns, what failed nodes, traces and results carry, and the
one ladder (:func:`decide_stop`) that turns failures into a run's stop reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop import Budget, Capabilities, ScriptedBackend
from thinkloop.exceptions import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BudgetExhausted,
    ModelNotFound,
    RateLimited,
    ReplayMismatch,
    Unauthorized,
)
from thinkloop.runtime.failure import Failure, decide_stop, failure_of
from thinkloop.runtime.graph import Node
from thinkloop.runtime.result import Outcome
from thinkloop.runtime.trace import load_trace, replay
from thinkloop.strategies.base import Strategy
from thinkloop.strategies.cot import Direct
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.types import ChatRequest

pytestmark = pytest.mark.anyio


# --- the record ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (BudgetExhausted("no room", resource="calls"), "budget"),
        (RateLimited("slow", retry_after=2.0, status=429), "rate_limited"),
        (Unauthorized("no key", status=401), "unauthorized"),
        (ModelNotFound("who", status=404), "model_not_found"),
        (BackendTimeout("late"), "timeout"),
        (BackendUnavailable("down"), "unavailable"),
        (BackendError("teapot", status=418), "backend"),
        (ReplayMismatch("diverged"), "replay_mismatch"),
    ],
)
def test_each_error_the_runtime_knows_has_its_kind(error: Exception, kind: str) -> None:
    failure = Failure.of(error)
    assert failure.kind == kind and failure.message == str(error) and failure.is_budget == (kind == "budget")
    if isinstance(error, BackendError):
        assert (failure.status, failure.retry_after) == (error.status, error.retry_after)
        assert (failure.retryable, failure.maybe_billed) == (error.retryable, error.maybe_billed)
    assert Failure.model_validate_json(failure.model_dump_json()) == failure  # serialisable both ways


def test_an_error_the_runtime_does_not_know_is_not_a_failure() -> None:
    with pytest.raises(TypeError, match="ValueError"):
        Failure.of(ValueError("a bug"))


async def test_attempt_returns_the_typed_failure_not_a_string() -> None:
    seen: list[Failure | None] = []

    class Probe(Strategy):
        name = "probe"

        async def solve(self, ctx, question, *, parent):  # type: ignore[no-untyped-def]
            for _ in range(2):
                _, failure = await ctx.capture(
                    lambda: ctx.call(ChatRequest.of(question, max_tokens=8), parents=[parent])
                )
                seen.append(failure)
            return Outcome(candidate=None, stop_reason="completed")

    def refuse(request: ChatRequest) -> str:
        raise BackendError("answered 400: bad request", status=400)

    await Probe().run("q", backend=ScriptedBackend(refuse), budget=Budget(calls=1))
    backend_failure, budget_failure = seen
    assert backend_failure is not None and (backend_failure.kind, backend_failure.status) == ("backend", 400)
    assert budget_failure is not None and budget_failure.is_budget and budget_failure.resource == "calls"


# --- on nodes, on the trace, on the result --------------------------------------------------------------------
async def test_a_budget_refusal_is_typed_on_the_node_the_trace_and_the_result(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    result = await Direct().run(
        "What is 2 + 2? " * 20,
        backend=ScriptedBackend(["Answer: 4"]),
        budget=Budget(tokens=30),
        trace_path=trace,
    )
    assert result.stop_reason == "budget" and result.failure is None  # a budget stop is no error
    refusals = result.failures
    assert refusals and all(f.is_budget and f.resource == "tokens" for f in refusals)
    failed = [e.node for e in load_trace(trace) if getattr(e, "node", None) is not None and e.node.status == "failed"]
    assert [n.failure for n in failed] == refusals


async def test_a_backend_error_is_the_results_typed_failure() -> None:
    def broken(request: ChatRequest) -> str:
        raise BackendUnavailable("cannot reach the server")

    result = await Direct().run("q", backend=ScriptedBackend(broken))
    assert result.stop_reason == "error" and result.failure is not None
    assert result.failure.kind == "unavailable" and result.error == "cannot reach the server"
    assert result.failures[-1] == result.failure  # the last of its retried attempts, each a failed node
    assert {f.kind for f in result.failures} == {"unavailable"}


def _legacy(trace: Path) -> Path:
    """The same trace as a version before typed failures wrote it: no ``failure`` on any node."""
    old = trace.with_name("old.jsonl")
    lines = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "node":
            assert event["node"].pop("failure", None) is not None or event["node"]["status"] != "failed"
        lines.append(json.dumps(event))
    old.write_text("\n".join(lines) + "\n")
    return old


async def test_an_older_trace_still_loads_replays_and_reads_its_failures(tmp_path: Path) -> None:
    replies = iter(["Answer: 4"])

    def flaky(request: ChatRequest) -> str:
        reply = next(replies, None)
        if reply is None:
            raise BackendError("the server said no")
        return reply

    trace = tmp_path / "t.jsonl"
    serial = Capabilities(honours_n=False, prompt_overhead_tokens=0)
    first = await SelfConsistency(n=3).run(
        "q", backend=ScriptedBackend(flaky, capabilities=serial), budget=Budget(calls=2), trace_path=trace
    )
    old = _legacy(trace)
    nodes = [e.node for e in load_trace(old) if getattr(e, "node", None) is not None]
    failed = [n for n in nodes if n.status == "failed"]
    assert failed and all(n.failure is None for n in failed)
    derived = [failure_of(n) for n in failed]
    assert [(f.kind, f.resource, f.message) for f in derived if f is not None] == [
        (f.kind, f.resource, f.message) for f in first.failures
    ]
    again = await SelfConsistency(n=3).run("q", backend=replay(old, strict=True), budget=Budget(calls=2))
    assert (again.answer, again.stop_reason) == (first.answer, first.stop_reason)


def test_a_node_without_a_failure_is_not_a_failure() -> None:
    assert failure_of(Node(id=0, kind="generate", status="done")) is None
    assert failure_of(Node(id=0, kind="generate", status="failed")) is None  # nothing says why


# --- one ladder ------------------------------------------------------------------------------------------------
failures = st.lists(
    st.one_of(
        st.builds(
            Failure,
            kind=st.just("budget"),
            message=st.text(max_size=3),
            resource=st.sampled_from(["tokens", "calls", "seconds"]),
        ),
        st.builds(
            Failure,
            kind=st.sampled_from(["backend", "timeout", "rate_limited", "unavailable"]),
            message=st.text(max_size=3),
        ),
    ),
    max_size=6,
)
proposals = st.sampled_from(["completed", "accepted", "converged", "max_rounds", "budget", "deadline", "error"])


@given(
    proposed=proposals,
    failures=failures,
    answered=st.booleans(),
    time_left=st.booleans(),
    ended_by=st.one_of(st.none(), failures.filter(bool).map(lambda fs: fs[0])),
)
def test_the_ladder(
    proposed: str, failures: list[Failure], answered: bool, time_left: bool, ended_by: Failure | None
) -> None:
    stop, why = decide_stop(proposed, failures, answered=answered, ended_by=ended_by, time_left=time_left)
    errors = [f for f in failures if not f.is_budget and f.message]
    # A failure reported as the error is always an infrastructure failure, and then the stop is an error.
    assert why is None or (stop == "error" and not why.is_budget)
    if ended_by is not None:  # the failure that ended the run decides
        if ended_by.is_budget:
            assert (stop, why) == ("budget" if time_left else "deadline", None)
        else:
            assert (stop, why) == ("error", ended_by)
    elif proposed in ("accepted", "converged", "max_rounds", "deadline") or (proposed == "completed" and answered):
        assert (stop, why) == (proposed, None)  # the strategy's reason stands
    elif proposed == "budget":
        assert (stop, why) == ("budget" if time_left else "deadline", None)
    elif errors:  # failed or found nothing: the last infrastructure failure says why
        assert (stop, why) == ("error", errors[-1])
    elif failures and not answered:
        assert (stop, why) == ("budget", None)  # only the budget refused calls
    else:
        assert (stop, why) == (proposed, None)


@pytest.mark.parametrize(
    ("steps", "stop"),
    [
        (["error", "budget"], "error"),
        (["budget"], "budget"),
        (["ok"], "completed"),
        (["ok", "error"], "completed"),
        (["error", "ok", "error"], "completed"),
    ],
)
async def test_the_engine_decides_the_stop_from_the_failures_on_the_nodes(steps: list[str], stop: str) -> None:
    """A strategy that just reports ``completed``: the engine's ladder reads the nodes to say why it ended."""

    class Probe(Strategy):
        name = "probe"

        async def solve(self, ctx, question, *, parent):  # type: ignore[no-untyped-def]
            best = None
            for step in steps:  # a "budget" step asks for more than the token budget holds
                request = ChatRequest.of("error" if step == "error" else question, max_tokens=8)
                called, _ = await ctx.capture(
                    lambda request=request, step=step: ctx.call(
                        request,
                        parents=[parent],
                        min_tokens=10_000 if step == "budget" else 1,
                    )
                )
                if called is not None:
                    best = ctx.candidate(called[0], called[1].choices[0])
            return Outcome(candidate=best, stop_reason="completed")

    def reply(request: ChatRequest) -> str:
        if request.messages[-1].content == "error":
            raise BackendError("the server said no", status=500)
        return "Answer: 4"

    result = await Probe().run("q", backend=ScriptedBackend(reply), budget=Budget(tokens=1_000))
    assert result.stop_reason == stop
    assert (result.failure is not None) == (stop == "error")
    if stop == "error":
        assert result.failure == [f for f in result.failures if not f.is_budget][-1] and result.failure.status == 500
    expected = decide_stop("completed", result.failures, answered=result.candidate is not None)
    assert (result.stop_reason, result.failure) == expected
