"""The engine: runs strategies under a budget, a deadline and one capacity limiter per backend.

One engine can run many questions at once (benchmarks do): each :meth:`Engine.run` gets its own context,
ledger, graph and trace, while calls to the same backend share its limiter. Everything a run starts lives in
task groups inside :meth:`Engine.run`, so no task outlives its run.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from thinkloop.backends.base import Backend
from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.budget import Budget, BudgetLedger
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Candidate, Outcome, Result, StopReason
from thinkloop.runtime.trace import JsonlTraceSink, RunFinished, RunStarted, Sink, Trace, redact

if TYPE_CHECKING:
    from thinkloop.strategies.base import Strategy
    from thinkloop.verifiers.base import Verifier


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
        strategy: Strategy,
        question: str,
        *,
        budget: Budget | None = None,
        verifier: Verifier | None = None,
        trace_path: str | Path | None = None,
        sinks: Iterable[Sink] = (),
        trace: Trace | None = None,
        run_id: str | None = None,
    ) -> Result:
        """Run ``strategy`` on ``question``; always returns the best answer found, with why it stopped."""
        budget = budget or Budget()
        run_id = run_id or uuid.uuid4().hex[:12]
        trace = trace or Trace()
        trace.sinks.extend(sinks)
        if trace_path is not None:
            trace.sinks.append(JsonlTraceSink(trace_path))
        ledger = BudgetLedger(budget)
        ctx = RunContext(
            engine=self, backend=self.backend, ledger=ledger, trace=trace, question=question, run_id=run_id,
            verifier=verifier,
        )
        trace.emit(
            RunStarted(
                run_id=run_id, question=question, strategy=strategy.label, model=self.backend.name,
                budget=budget.model_dump(mode="json", exclude_none=True),
            )
        )
        started = time.perf_counter()
        root = ctx.record("question", (), text=question)
        outcome: Outcome | None = None
        stop: StopReason = "completed"
        error: str | None = None
        try:
            with anyio.move_on_after(budget.seconds if budget.seconds is not None else math.inf) as deadline:
                outcome = await strategy.solve(ctx, question, parent=root.id)
            stop = "deadline" if deadline.cancelled_caught else outcome.stop_reason
        except anyio.get_cancelled_exc_class():
            trace.emit(RunFinished(run_id=run_id, stop_reason="cancelled"))
            trace.close()
            raise
        except Exception as exc:
            if _find(exc, BudgetExhausted) is not None:
                stop = "budget"
            elif (backend_error := _find(exc, BackendError)) is not None:
                stop, error = "error", redact(str(backend_error))
            else:
                trace.emit(RunFinished(run_id=run_id, stop_reason="error", error=redact(repr(exc))))
                trace.close()
                leaf = _first_leaf(exc)
                if leaf is exc:
                    raise
                # A user's callback (reward, value function, verifier) failed inside a task group: raise
                # that error itself, not a group the caller would have to unpack.
                raise leaf from exc
        if stop == "budget" and ledger.seconds_left() <= 0:
            stop = "deadline"  # the time budget refused the next call
        if outcome is not None and outcome.candidate is not None:
            candidate: Candidate | None = outcome.candidate
        else:  # stopped mid-way: the strategy's pick from work in progress, else the best candidate seen
            candidate = ctx.provisional()
        if error is None and (stop == "error" or (candidate is None and stop == "completed")):
            # Say why: the last infrastructure failure, or the budget if only budget refusals failed.
            failed = ctx.graph.by_status("failed")
            errors = [n.error for n in failed if n.error and not (n.data and "budget" in n.data)]
            if errors:
                stop, error = "error", errors[-1]
            elif failed and candidate is None:
                stop = "budget"
        trace.emit(
            RunFinished(
                run_id=run_id, stop_reason=stop, answer=candidate.answer if candidate else None,
                answer_node=candidate.node_id if candidate else None, error=error,
            )
        )
        trace.close()
        return Result(
            run_id=run_id,
            question=question,
            strategy=strategy.label,
            model=self.backend.name,
            answer=candidate.answer if candidate else None,
            text=candidate.text if candidate else None,
            candidate=candidate,
            stop_reason=stop,
            usage=ctx.usage,
            cost=ctx.cost,
            latency_s=time.perf_counter() - started,
            error=error,
            notes=outcome.notes if outcome is not None else (),
            data=outcome.data if outcome is not None else None,
            trace_path=str(trace_path) if trace_path is not None else None,
            graph=ctx.graph,
        )
