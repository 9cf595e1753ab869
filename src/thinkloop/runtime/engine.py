"""The engine: runs a policy under a budget, a deadline and one capacity limiter per backend.

A *policy* is anything with a ``label`` and an async ``solve(ctx, question, parent=...)`` that grows the
run's graph through its :class:`RunContext` and returns an :class:`Outcome`; every strategy is one. The
engine knows nothing else about it.

One engine can run many questions at once (benchmarks do): each :meth:`Engine.run` gets its own context,
ledger, graph and trace, while calls to the same backend share its limiter. Everything a run starts lives in
task groups inside :meth:`Engine.run`, so no task outlives its run. This is also the one place that turns a
spent budget, a deadline or a failed backend into a stop reason with the best answer found so far.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import anyio

from thinkloop.backends.base import Backend
from thinkloop.backends.replay import ReplayBackend
from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.budget import Budget, BudgetLedger
from thinkloop.runtime.context import AnswerExtractor, RunContext
from thinkloop.runtime.failure import Failure, decide_stop, failure_of
from thinkloop.runtime.findings import stop_detail, verdict_of, warnings_of
from thinkloop.runtime.result import Candidate, Outcome, Result, StopReason
from thinkloop.runtime.trace import JsonlTraceSink, RunFinished, RunStarted, Sink, Trace, redact
from thinkloop.runtime.verdict import Verifier


class Policy(Protocol):
    """What the engine runs: a strategy, or anything shaped like one."""

    @property
    def label(self) -> str:
        """A short name for traces and reports."""
        ...

    def extract(self, text: str) -> str | None:
        """The final answer in a reply's text, in this policy's answer format (``None``: none there)."""
        ...

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        """Grow the graph under ``parent`` and return this policy's pick."""
        ...


def _first_leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside ``exc`` (``exc`` itself when it is not a group)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` inside an exception (group)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


class Engine:
    """Owns the capacity limiters of the backends it calls.

    Args:
        backend: the default backend for runs.
        max_concurrency: requests in flight per backend; ``None`` takes the backend's capabilities
            (unlimited when it states none).
    """

    def __init__(self, backend: Backend, *, max_concurrency: int | None = None) -> None:
        self.backend = backend
        self._max_concurrency = max_concurrency
        self._limiters: dict[int, anyio.CapacityLimiter | None] = {}

    def limiter(self, backend: Backend) -> anyio.CapacityLimiter | None:
        """The backend's capacity limiter, shared by every run on this engine; ``None`` when unlimited."""
        key = id(backend)
        try:
            return self._limiters[key]
        except KeyError:
            pass
        limit = backend.capabilities.max_concurrency
        if backend is self.backend and self._max_concurrency is not None:
            limit = self._max_concurrency
        limiter = None if limit is None else anyio.CapacityLimiter(limit)
        self._limiters[key] = limiter
        return limiter

    async def run(
        self,
        policy: Policy,
        question: str,
        *,
        budget: Budget | None = None,
        verifier: Verifier | None = None,
        extract: AnswerExtractor | None = None,
        trace_path: str | Path | None = None,
        sinks: Iterable[Sink] = (),
        trace: Trace | None = None,
        run_id: str | None = None,
    ) -> Result:
        """Run ``policy`` on ``question``; always returns the best answer found, with why it stopped.

        ``extract`` pulls answers out of replies (default: the policy's own ``extract``).
        """
        budget = budget or Budget()
        run_id = run_id or uuid.uuid4().hex[:12]
        trace = trace or Trace()
        trace.sinks.extend(sinks)
        if trace_path is not None:
            trace.sinks.append(JsonlTraceSink(trace_path))
        ledger = BudgetLedger(budget)
        label = policy.label
        ctx = RunContext(
            backend=self.backend,
            ledger=ledger,
            trace=trace,
            question=question,
            run_id=run_id,
            limiter_for=self.limiter,
            extract=extract or policy.extract,
            verifier=verifier,
            pinned=isinstance(self.backend, ReplayBackend),
        )
        trace.emit(
            RunStarted(
                run_id=run_id,
                question=question,
                strategy=label,
                model=self.backend.name,
                budget=budget.model_dump(mode="json", exclude_none=True),
                started_at=time.time(),
            )
        )
        started = time.perf_counter()
        root = ctx.record("question", (), text=question)
        outcome: Outcome | None = None
        proposed: StopReason = "completed"
        ended_by: Failure | None = None
        try:
            with anyio.move_on_after(budget.seconds if budget.seconds is not None else math.inf) as deadline:
                outcome = await policy.solve(ctx, question, parent=root.id)
            proposed = "deadline" if deadline.cancelled_caught else outcome.stop_reason  # type: ignore[union-attr]
        except anyio.get_cancelled_exc_class():
            try:
                trace.emit(RunFinished(run_id=run_id, stop_reason="cancelled"))
            finally:
                trace.close()
            raise
        except Exception as exc:
            ended_by = _failure_for(exc, trace, run_id)
        if outcome is not None and outcome.candidate is not None:
            candidate: Candidate | None = outcome.candidate
        else:  # stopped mid-way: the strategy's pick from work in progress, else the best candidate seen
            candidate = ctx.provisional()
        stop, why = decide_stop(
            proposed,
            _failures(ctx),
            answered=candidate is not None,
            ended_by=ended_by,
            time_left=ledger.seconds_left() > 0,
        )
        error = why.message if why is not None else None
        checked = ctx.verifier is not None
        if checked and candidate is not None and candidate.accepted is None and stop not in ("deadline", "error"):
            candidate = await _check_final(ctx, candidate, trace, run_id)
        notes = outcome.notes if outcome is not None else ()
        if ledger.overrun_tokens:
            notes += (f"the server billed {ledger.overrun_tokens} tokens beyond what the calls reserved",)
        usage = ledger.usage
        result = Result(
            run_id=run_id,
            question=question,
            strategy=label,
            model=self.backend.name,
            answer=candidate.answer if candidate else None,
            text=candidate.text if candidate else None,
            candidate=candidate,
            stop_reason=stop,
            usage=usage,
            cost=ledger.cost,
            spent={"tokens": ledger.billed.tokens, "calls": ledger.billed.calls, "dollars": ledger.billed.dollars},
            latency_s=time.perf_counter() - started,
            error=error,
            failure=why,
            notes=notes,
            attempts=outcome.attempts if outcome is not None else (),
            votes=outcome.votes if outcome is not None else None,
            data=outcome.data if outcome is not None else None,
            trace_path=str(trace_path) if trace_path is not None else None,
            graph=ctx.graph,
        )
        result.verdict, result.feedback = verdict_of(result, checked)
        result.warnings = tuple(warnings_of(result, checked))
        limits = budget.model_dump(mode="json", exclude_none=True)
        result.stop_detail = stop_detail(result, outcome.detail if outcome is not None else None, budget=limits)
        try:  # a trace write that fails (a full disk) fails the run: it must not read as finished
            trace.emit(
                RunFinished(
                    run_id=run_id,
                    stop_reason=stop,
                    answer=candidate.answer if candidate else None,
                    answer_node=candidate.node_id if candidate else None,
                    error=error,
                    failure=why,
                    usage=usage.model_dump(),
                    cost=result.cost,
                    verdict=result.verdict,
                    feedback=result.feedback,
                    warnings=result.warnings,
                    stop_detail=result.stop_detail,
                )
            )
        finally:
            trace.close()
        return result


async def _check_final(ctx: RunContext, candidate: Candidate, trace: Trace, run_id: str) -> Candidate:
    """Check an answer no strategy checked (a vote's winner), so a run with a verifier always has a verdict.

    A check the budget cannot pay for (an LLM judge) or that fails for an infrastructure reason leaves the
    answer unchecked, and the warnings say so."""
    try:
        checked, _failure = await ctx.capture(lambda: ctx.verify(candidate, strategy="check"))
    except BaseException as exc:  # cancelled, or a verifier's own bug: the trace still ends
        stop = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "error"
        error = None if stop == "cancelled" else redact(repr(exc))
        try:
            trace.emit(RunFinished(run_id=run_id, stop_reason=stop, error=error))
        finally:
            trace.close()
        raise
    return checked if checked is not None else candidate


def _failure_for(exc: Exception, trace: Trace, run_id: str) -> Failure:
    """The failure that ended a run (a budget refusal first, in a group), or the exception itself when it is
    not ours."""
    refused = _find(exc, BudgetExhausted)
    if refused is not None:
        return Failure.of(refused)
    backend_error = _find(exc, BackendError)
    if backend_error is not None:
        return Failure.of(backend_error, redact(str(backend_error)))
    try:
        trace.emit(RunFinished(run_id=run_id, stop_reason="error", error=redact(repr(exc))))
    finally:
        trace.close()
    leaf = _first_leaf(exc)
    if leaf is exc:
        raise exc
    # A user's callback (reward, value function, verifier) failed inside a task group: raise that error
    # itself, not a group the caller would have to unpack.
    raise leaf from exc


def _failures(ctx: RunContext) -> Iterator[Failure]:
    """Every failed call's record, in the order the calls were recorded (read only when the ladder needs it)."""
    return (f for n in ctx.graph.nodes() if (f := failure_of(n)) is not None)
