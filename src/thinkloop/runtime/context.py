"""A run's context: the one choke point through which every model call of a run passes.

``RunContext.call`` reserves budget before each attempt, waits for the backend's capacity limiter, calls the
backend, settles the budget to the real usage and records the attempt as a graph node, whatever happens
(done, failed, cancelled); it also owns retries, so each retried attempt is reserved and recorded too.
Strategies and verifiers never call a backend directly.

The context is handed what it needs by the engine (a capacity limiter per backend, an answer extractor) and
knows nothing of the layers above it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from itertools import count
from typing import Any

import anyio

from thinkloop.backends.base import Backend, request_tokens_upper_bound
from thinkloop.backends.replay import ReplayBackend
from thinkloop.exceptions import BackendError, BudgetExhausted, ReplayMismatch
from thinkloop.runtime.budget import Budget, BudgetLedger, Reservation
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.graph import Node, NodeKind, NodeStatus, ReasoningGraph, check_kind
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.sampling import Samples, Sampling
from thinkloop.runtime.totals import RunTotals
from thinkloop.runtime.trace import Trace, redact
from thinkloop.runtime.verdict import Verifier
from thinkloop.types import ChatRequest, Choice, Completion, Message, RunUsage, Usage

__all__ = ["AnswerExtractor", "Failure", "LimiterFor", "RunContext", "RunTotals", "Samples", "no_answer"]

AnswerExtractor = Callable[[str], "str | None"]
"""Pulls the final answer out of a reply's text (``None``: no answer in it)."""

LimiterFor = Callable[[Backend], "anyio.CapacityLimiter | None"]
"""The capacity limiter shared by every call to a backend (``None``: unlimited)."""


def no_answer(text: str) -> str | None:
    """The extractor of a run that was given none: replies carry no extracted answer."""
    return None


class RunContext(Sampling):
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
        totals: RunTotals | None = None,
    ) -> None:
        self.backend = backend
        self.ledger = ledger
        self.trace = trace
        self.question = question
        self.run_id = run_id
        self.limiter_for: LimiterFor = limiter_for if limiter_for is not None else (lambda _backend: None)
        self.extract: AnswerExtractor = extract if extract is not None else no_answer
        self.verifier = verifier
        self.pinned = pinned
        self._by_node = pinned and isinstance(backend, ReplayBackend)
        """Calls go to a replay, which is asked by each call's node (:meth:`ReplayBackend.complete_call`)."""
        self.graph = graph if graph is not None else ReasoningGraph()
        self._ids = ids if ids is not None else count()
        self.totals = totals if totals is not None else RunTotals()

    # --- nesting --------------------------------------------------------------------------------------
    def child(self, budget: Budget | None = None, *, verifier: Verifier | None = None) -> RunContext:
        """A context for a sub-strategy: same graph, trace and totals; optionally a slice of the budget."""
        return RunContext(
            backend=self.backend,
            ledger=self.ledger.child(budget) if budget is not None else self.ledger,
            trace=self.trace,
            question=self.question,
            run_id=self.run_id,
            limiter_for=self.limiter_for,
            extract=self.extract,
            verifier=verifier if verifier is not None else self.verifier,
            pinned=self.pinned,
            graph=self.graph,
            ids=self._ids,
            totals=self.totals,
        )

    @property
    def usage(self) -> RunUsage:
        return self.totals.usage

    @property
    def cost(self) -> float | None:
        return self.totals.cost

    @property
    def best(self) -> Candidate | None:
        return self.totals.best

    def offer(self, candidate: Candidate) -> None:
        """Keep the best candidate seen so far, so a run stopped early still has an answer."""
        if candidate.better_than(self.totals.best):
            self.totals.best = candidate

    def set_provisional(self, pick: Callable[[], Candidate | None]) -> None:
        """Register how to pick an answer from work in progress, should the run be stopped mid-way
        (deadline, budget). The outermost strategy's pick wins; the engine falls back to :attr:`best`."""
        if self.totals.provisional is None:
            self.totals.provisional = pick

    def provisional(self) -> Candidate | None:
        pick = self.totals.provisional
        candidate = pick() if pick is not None else None
        return candidate if candidate is not None else self.totals.best

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
        parents = tuple(parents)
        node = Node(
            id=next(self._ids) if node_id is None else node_id,
            kind=kind,
            parents=parents,
            status=status,
            depth=self._depth(parents),
            started_at=time.time(),
            **fields,
        )
        return self._publish(node)

    def _publish(self, node: Node) -> Node:
        """Put a node's new version on the graph and emit it to the trace."""
        self.graph.put(node)
        self.trace.emit_node(self.run_id, node)
        return node

    def _depth(self, parents: tuple[int, ...]) -> int:
        """One more than the deepest parent's depth (0 for a root)."""
        graph = self.graph
        if len(parents) == 1:  # most nodes: one call under the last
            return graph.node(parents[0]).depth + 1
        return max((graph.node(p).depth for p in parents), default=-1) + 1

    def mark(self, node: Node, status: NodeStatus, **fields: Any) -> Node:
        """Change a recorded node (pruned, a score, finished) and emit the new version."""
        fields["status"] = status
        return self._publish(node.model_copy(update=fields))

    # --- calls ------------------------------------------------------------------------------------------
    async def call(
        self,
        request: ChatRequest,
        *,
        parents: Sequence[int],
        kind: NodeKind = "generate",
        strategy: str | None = None,
        backend: Backend | None = None,
        min_tokens: int = 1,
        data: dict[str, Any] | None = None,
    ) -> tuple[Node, Completion]:
        """One model call under the budget, retried where the backend says the failure is transient.

        Every attempt reserves its worst case first and is its own node. Raises :class:`BudgetExhausted`
        before sending when an attempt can't fit, :class:`BackendError` when the backend fails for good.
        """
        check_kind(kind)
        backend = self.backend if backend is None or self.pinned else backend
        attempt = 0
        while True:
            try:
                return await self._attempt(request, parents, kind, strategy, backend, min_tokens, data, attempt)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                delay = backend.capabilities.retry.delay(attempt, exc.retry_after, random.uniform(0.5, 1.0))
                if delay is None or delay >= self.ledger.seconds_left():
                    raise
                await anyio.sleep(delay)
                attempt += 1

    async def _attempt(
        self, request: ChatRequest, parents: Sequence[int], kind: NodeKind, strategy: str | None,
        backend: Backend, min_tokens: int, data: dict[str, Any] | None, attempt: int,
    ) -> tuple[Node, Completion]:
        if attempt:
            data = (data or {}) | {"attempt": attempt + 1}
        prompt_bound = request_tokens_upper_bound(backend, request)
        ledger = self.ledger
        try:
            # Calls in flight hold their worst case. Rather than shrink this call (or refuse it) because of
            # tokens they will likely not use, wait for them to settle while they might free enough room.
            while (
                reservation := ledger.reserve_or_wait(
                    prompt_tokens=prompt_bound, max_tokens=request.max_tokens, n=request.n, min_tokens=min_tokens,
                    model=backend.name,
                )
            ) is None:
                await ledger.settled_change()
        except BudgetExhausted as exc:
            # ``data["budget"]`` stays for readers of older traces; ``failure`` is the typed record.
            self.record(kind, parents, status="failed", strategy=strategy, request=request, error=str(exc),
                        failure=Failure.of(exc), data={"budget": exc.resource} | (data or {}))
            raise
        if reservation.max_tokens != request.max_tokens:
            request = request.model_copy(update={"max_tokens": reservation.max_tokens})
        parents = tuple(parents)
        node = self._publish(Node(
            id=next(self._ids), kind=kind, parents=parents, request=request, strategy=strategy, data=data,
            started_at=time.time(), depth=self._depth(parents),
        ))
        sent = False
        started = time.perf_counter()
        limiter = self.limiter_for(backend)
        try:
            if limiter is None:
                # No limit to wait for. A cancellation point, without a trip round the event loop: the backend
                # yields while it waits on its I/O, and the seconds budget is checked at every reservation.
                await anyio.lowlevel.checkpoint_if_cancelled()
                sent = True
                completion = await (backend.complete_call(request, node.id) if self._by_node  # type: ignore[attr-defined]
                                    else backend.complete(request))
            else:
                async with limiter:
                    # A limiter slot handed over just as the run stopped must not send one more call.
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    sent = True
                    # A replay maps the call back by its node, not by its request alone.
                    completion = await (backend.complete_call(request, node.id) if self._by_node  # type: ignore[attr-defined]
                                        else backend.complete(request))
            if not isinstance(completion, Completion):
                raise BackendError(
                    f"{backend.name} returned {type(completion).__name__}, not a Completion", maybe_billed=True
                )
        except anyio.get_cancelled_exc_class():
            # Sent and cancelled: the server may have billed it, so the worst case stays billed.
            if sent:
                self._bill_unknown(reservation)
            else:
                ledger.release(reservation)
            self.mark(node, "cancelled", latency_s=time.perf_counter() - started)
            raise
        except ReplayMismatch as exc:
            ledger.release(reservation)
            diverged = "the replay diverged from its record"
            self.mark(node, "failed", error=diverged, failure=Failure.of(exc, diverged))
            raise
        except Exception as exc:
            # Billed unless proven otherwise: an error the backend did not map may have come after the server
            # generated (and billed) the reply.
            error = exc if isinstance(exc, BackendError) else BackendError(
                f"{type(exc).__name__}: {exc}", maybe_billed=True
            )
            billed = sent and error.maybe_billed
            if billed:
                self._bill_unknown(reservation)  # a timeout or a 5xx: the server may have done the work
            else:
                ledger.settle(reservation, None)
                if sent:
                    self.totals.fail()
            message = redact(str(error))
            # What a replay needs to fail this call the same way: whether it was billed.
            failure = {"billed": billed} if sent else None
            self.mark(node, "failed", error=message, latency_s=time.perf_counter() - started,
                      failure=Failure.of(error, message),
                      **({"data": (node.data or {}) | failure} if failure else {}))
            if error is exc:
                raise
            raise BackendError(message, maybe_billed=error.maybe_billed) from exc
        ledger.settle(reservation, completion.usage)
        self.totals.charge(completion.usage, reservation)
        text = answer = None
        choices = completion.choices
        if len(choices) == 1:
            # The answer is on the node itself, so a graph or trace read alone shows what each call concluded.
            choice = choices[0]
            text, answer = choice.text, self.answer_of(choice)
        node = self.mark(
            node, "done", completion=completion, usage=completion.usage, latency_s=completion.latency_s,
            text=text, answer=answer,
        )
        return node, completion

    def _bill_unknown(self, reservation: Reservation) -> None:
        """A sent call whose usage is unknown: its reservation stays billed, and it counts as such."""
        self.ledger.settle(reservation, Usage())
        self.totals.charge(Usage(), reservation)

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

    def answer_of(self, choice: Choice) -> str | None:
        """The answer a choice states. A reply the token limit cut off (``finish_reason="length"``) is read
        without its last word when it stops inside one: a number cut short is another number ("The answer is
        12" of 1234 states nothing); one cut off empty has no answer."""
        if choice.finish_reason != "length":
            return self.extract(choice.text)
        text = choice.text.rstrip()
        if text and text[-1].isalnum():
            parts = text.rsplit(None, 1)
            text = parts[0] if len(parts) == 2 else ""
        return self.extract(text) if text.strip() else None

    def candidate(self, node: Node, choice: Choice, **fields: Any) -> Candidate:
        """A candidate from one choice; an empty reply cut off by the token limit has no answer."""
        completion = node.completion
        if completion is not None and len(completion.choices) == 1 and completion.choices[0] is choice:
            answer = node.answer  # call() extracted it already
        elif completion is None and node.text == choice.text:
            answer = node.answer  # a per-choice node of an n-request, extracted when it was recorded
        else:
            answer = self.answer_of(choice)
        return Candidate(
            text=choice.text, answer=answer, node_id=node.id, finish_reason=choice.finish_reason,
            mean_logprob=choice.mean_logprob, reasoning=choice.reasoning, **fields,
        )

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
            "verify", parents, strategy=strategy, answer=candidate.answer, score=verdict.score,
            data={"accepted": verdict.accepted, "feedback": verdict.feedback},
        )
        scored = candidate.model_copy(
            update={"score": verdict.score, "accepted": verdict.accepted, "feedback": verdict.feedback}
        )
        self.offer(scored)
        return scored

    async def attempt(self, work: Callable[[], Any]) -> tuple[Any, Failure | None]:
        """Run ``work()`` and turn the ways a step can fail for a reason outside the strategy into data:
        ``(value, None)``, or ``(None, failure)`` for a budget refusal (``failure.is_budget``) or a backend
        error (its message redacted)."""
        try:
            return await work(), None
        except BudgetExhausted as exc:
            return None, Failure.of(exc)
        except BackendError as exc:
            return None, Failure.of(exc, redact(str(exc)))
