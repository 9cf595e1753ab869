"""A run's context: what strategies and verifiers are handed, and the one way they reach a model.

A facade over the run's parts, each with one job:

- :class:`~thinkloop.runtime.caller.Caller`: every model call (reserve, send, settle, record, retry);
- :class:`~thinkloop.runtime.recorder.Recorder`: nodes onto the graph and out to the trace;
- :class:`~thinkloop.runtime.sampling.Sampler`: several samples of one request, as cheaply as the backend
  allows;
- :class:`~thinkloop.runtime.budget.BudgetLedger`: what is reserved and what was spent (tokens, calls,
  dollars, usage, cost);
- :class:`~thinkloop.runtime.best.BestSoFar`: the best answer so far, for a run stopped early.

Strategies and verifiers never call a backend directly. The context is handed what it needs by the engine
(a capacity limiter per backend, an answer extractor) and knows nothing of the layers above it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine, Sequence
from itertools import count
from typing import Any

from thinkloop.backends.base import Backend
from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.best import BestSoFar, RunTotals
from thinkloop.runtime.budget import Budget, BudgetLedger
from thinkloop.runtime.caller import AnswerExtractor, Caller, LimiterFor, no_answer
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.graph import Node, NodeKind, NodeStatus, ReasoningGraph
from thinkloop.runtime.recorder import Recorder
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.sampling import Sampler, Samples
from thinkloop.runtime.trace import Trace, redact
from thinkloop.runtime.verdict import Verifier
from thinkloop.types import ChatRequest, Choice, Completion, Message, RunUsage

__all__ = [
    "AnswerExtractor",
    "BestSoFar",
    "Failure",
    "LimiterFor",
    "RunContext",
    "RunTotals",
    "Samples",
    "no_answer",
]


class RunContext:
    """State shared by everything in one run: backend, budget ledger, graph, trace and verifier.

    Args:
        backend: the run's backend (calls without ``backend=`` go here).
        limiter_for: the engine's capacity limiter per backend.
        extract: pulls answers out of replies (``None``: replies carry no answer).
        pinned: send every call to ``backend``, even those that name another (a replayed run: the judge's
            recorded replies come from the same trace); ``backend`` is then a
            :class:`~thinkloop.backends.replay.ReplayBackend`, asked by each call's node.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        ledger: BudgetLedger,
        trace: Trace,
        question: str,
        run_id: str,
        limiter_for: LimiterFor | None = None,
        extract: AnswerExtractor | None = None,
        verifier: Verifier | None = None,
        pinned: bool = False,
        graph: ReasoningGraph | None = None,
        ids: count[int] | None = None,
        best: BestSoFar | None = None,
    ) -> None:
        recorder = Recorder(trace, run_id, graph, ids)
        caller = Caller(backend, ledger, recorder, limiter_for=limiter_for, extract=extract, pinned=pinned)
        self._setup(question, verifier, caller, best if best is not None else BestSoFar())

    def _setup(self, question: str, verifier: Verifier | None, caller: Caller, best: BestSoFar) -> None:
        self.question = question
        self.verifier = verifier
        self.caller = caller
        self.recorder = caller.recorder
        self.sampler = Sampler(caller)
        self.found = best
        """The best candidate so far and the provisional pick, shared by the whole run."""

    # --- nesting --------------------------------------------------------------------------------------
    def child(self, budget: Budget | None = None, *, verifier: Verifier | None = None) -> RunContext:
        """A context for a sub-strategy: same graph, trace and best answer; optionally a slice of the budget."""
        child = RunContext.__new__(RunContext)
        caller = self.caller.with_ledger(self.ledger.child(budget)) if budget is not None else self.caller
        child._setup(self.question, verifier if verifier is not None else self.verifier, caller, self.found)
        return child

    # --- the parts, by the names strategies read ----------------------------------------------------------
    @property
    def backend(self) -> Backend:
        return self.caller.backend

    @property
    def ledger(self) -> BudgetLedger:
        return self.caller.ledger

    @property
    def limiter_for(self) -> LimiterFor:
        return self.caller.limiter_for

    @property
    def extract(self) -> AnswerExtractor:
        return self.caller.extract

    @property
    def pinned(self) -> bool:
        return self.caller.pinned

    @property
    def trace(self) -> Trace:
        return self.recorder.trace

    @property
    def graph(self) -> ReasoningGraph:
        return self.recorder.graph

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    # --- what the run spent and found -------------------------------------------------------------------
    @property
    def usage(self) -> RunUsage:
        """The whole run's usage so far (the ledger's)."""
        return self.ledger.usage

    @property
    def cost(self) -> float | None:
        """The whole run's cost so far (the ledger's; ``None``: no priced call yet)."""
        return self.ledger.cost

    @property
    def best(self) -> Candidate | None:
        return self.found.best

    def offer(self, candidate: Candidate) -> None:
        """Keep the best candidate seen so far, so a run stopped early still has an answer."""
        self.found.offer(candidate)

    def set_provisional(self, pick: Callable[[], Candidate | None]) -> None:
        """Register how to pick an answer from work in progress, should the run be stopped mid-way
        (deadline, budget). The outermost strategy's pick wins; the engine falls back to :attr:`best`."""
        if self.found.provisional is None:
            self.found.provisional = pick

    def provisional(self) -> Candidate | None:
        return self.found.pick()

    # --- recording ------------------------------------------------------------------------------------
    def record(
        self,
        kind: NodeKind,
        parents: Sequence[int] = (),
        *,
        status: NodeStatus = "done",
        node_id: int | None = None,
        **fields: Any,
    ) -> Node:
        """Put a node (new, or a newer version of ``node_id``) on the graph and emit it."""
        return self.recorder.record(kind, parents, status=status, node_id=node_id, **fields)

    def mark(self, node: Node, status: NodeStatus, **fields: Any) -> Node:
        """Change a recorded node (pruned, a score, finished) and emit the new version."""
        return self.recorder.mark(node, status, **fields)

    # --- calls ------------------------------------------------------------------------------------------
    def call(
        self,
        request: ChatRequest,
        *,
        parents: Sequence[int],
        kind: NodeKind = "generate",
        strategy: str | None = None,
        backend: Backend | None = None,
        min_tokens: int = 1,
        data: dict[str, Any] | None = None,
    ) -> Coroutine[Any, Any, tuple[Node, Completion]]:
        """One model call under the budget, retried where the backend says the failure is transient
        (:meth:`Caller.call`; awaited as an ``async def``, without a coroutine of its own on the hot path).

        Every try reserves its worst case first and is its own node. Raises :class:`BudgetExhausted`
        before sending when a try can't fit, :class:`BackendError` when the backend fails for good.
        """
        return self.caller.call(
            request, parents=parents, kind=kind, strategy=strategy, backend=backend, min_tokens=min_tokens, data=data
        )

    async def side_call(
        self,
        system: str | None,
        user: str,
        *,
        parents: Sequence[int],
        kind: NodeKind,
        strategy: str | None,
        max_tokens: int,
        temperature: float | None = 0.0,
        backend: Backend | None = None,
    ) -> tuple[Node, Choice]:
        """A one-off question to a model beside the main line of reasoning (a critique, a judge's verdict,
        a value estimate): a system and a user message, at temperature 0 unless told otherwise."""
        messages = (Message(role="system", content=system),) if system else ()
        request = ChatRequest(
            messages=(*messages, Message(role="user", content=user)), max_tokens=max_tokens, temperature=temperature
        )
        node, completion = await self.call(request, parents=parents, kind=kind, strategy=strategy, backend=backend)
        return node, completion.choices[0]

    async def sample(
        self,
        request: ChatRequest,
        k: int,
        *,
        parents: Sequence[int],
        kind: NodeKind = "generate",
        strategy: str | None = None,
        into: Samples | None = None,
    ) -> Samples:
        """Draw ``k`` samples of ``request`` as cheaply as the backend allows (:meth:`Sampler.sample`)."""
        return await self.sampler.sample(request, k, parents=parents, kind=kind, strategy=strategy, into=into)

    def answer_of(self, choice: Choice) -> str | None:
        """The answer a choice states (:meth:`Caller.answer_of`)."""
        return self.caller.answer_of(choice)

    def candidate(self, node: Node, choice: Choice, **fields: Any) -> Candidate:
        """A candidate from one choice; an empty reply cut off by the token limit has no answer."""
        return self.caller.candidate(node, choice, **fields)

    # --- verification -----------------------------------------------------------------------------------
    async def verify(self, candidate: Candidate, *, strategy: str | None = None) -> Candidate:
        """Run the run's verifier on a candidate; record a ``verify`` node; return the scored candidate."""
        if self.verifier is None:
            return candidate
        parents = [candidate.node_id] if candidate.node_id is not None else []
        try:
            verdict = await self.verifier.verify(self.question, candidate, self)
        except BudgetExhausted:
            # The verifier's own calls ran out of budget: the answer stands, unverified, as the best so far.
            self.offer(candidate)
            raise
        self.record(
            "verify",
            parents,
            strategy=strategy,
            answer=candidate.answer,
            score=verdict.score,
            data={"accepted": verdict.accepted, "feedback": verdict.feedback},
        )
        scored = candidate.model_copy(
            update={"score": verdict.score, "accepted": verdict.accepted, "feedback": verdict.feedback}
        )
        self.offer(scored)
        return scored

    async def capture(self, work: Callable[[], Any]) -> tuple[Any, Failure | None]:
        """Run ``work()`` and turn the ways a step can fail for a reason outside the strategy into data:
        ``(value, None)``, or ``(None, failure)`` for a budget refusal (``failure.is_budget``) or a backend
        error (its message redacted)."""
        try:
            return await work(), None
        except BudgetExhausted as exc:
            return None, Failure.of(exc)
        except BackendError as exc:
            return None, Failure.of(exc, redact(str(exc)))

    async def attempt(self, work: Callable[[], Any]) -> tuple[Any, Failure | None]:
        """Deprecated name of :meth:`capture` ("attempt" is a call's try: a node's ``data["attempt"]``)."""
        warnings.warn("RunContext.attempt is deprecated: use RunContext.capture", DeprecationWarning, stacklevel=2)
        return await self.capture(work)
