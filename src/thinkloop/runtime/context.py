"""A run's context: the one choke point through which every model call of a run passes.

``RunContext.call`` reserves budget before a call, waits for the backend's capacity limiter, calls the
backend, settles the budget to the real usage and records the call as a graph node, whatever happens
(done, failed, cancelled). Strategies and verifiers never call a backend directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, Any

import anyio

from thinkloop.backends.base import Backend, prompt_tokens_upper_bound
from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.budget import Budget, BudgetLedger, Reservation
from thinkloop.runtime.graph import Node, NodeKind, NodeStatus, ReasoningGraph
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.trace import NodeEvent, Trace, redact
from thinkloop.types import ChatRequest, Choice, Completion, RunUsage, Usage
from thinkloop.verifiers.extract import extract_answer

if TYPE_CHECKING:
    from thinkloop.runtime.engine import Engine
    from thinkloop.verifiers.base import Verifier


@dataclass
class Samples:
    """What a batch of samples brought back, including what it did not."""

    candidates: list[Candidate] = field(default_factory=list)
    requested: int = 0
    budget_hit: bool = False
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.candidates)


class RunContext:
    """State shared by everything in one run: backend, budget ledger, graph, trace and verifier."""

    def __init__(
        self,
        *,
        engine: Engine,
        backend: Backend,
        ledger: BudgetLedger,
        trace: Trace,
        question: str,
        run_id: str,
        verifier: Verifier | None = None,
        graph: ReasoningGraph | None = None,
        ids: count[int] | None = None,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.ledger = ledger
        self.trace = trace
        self.question = question
        self.run_id = run_id
        self.verifier = verifier
        self.graph = graph if graph is not None else ReasoningGraph()
        self._ids = ids if ids is not None else count()
        # Totals and the best candidate are shared by the whole run, sub-strategies included.
        self.shared = shared if shared is not None else {"usage": RunUsage(), "cost": None, "best": None}

    # --- nesting --------------------------------------------------------------------------------------
    def child(self, budget: Budget | None = None, *, verifier: Verifier | None = None) -> RunContext:
        """A context for a sub-strategy: same graph, trace and totals; optionally a slice of the budget."""
        return RunContext(
            engine=self.engine,
            backend=self.backend,
            ledger=self.ledger.child(budget) if budget is not None else self.ledger,
            trace=self.trace,
            question=self.question,
            run_id=self.run_id,
            verifier=verifier if verifier is not None else self.verifier,
            graph=self.graph,
            ids=self._ids,
            shared=self.shared,
        )

    @property
    def usage(self) -> RunUsage:
        return self.shared["usage"]

    @property
    def cost(self) -> float | None:
        return self.shared["cost"]

    @property
    def best(self) -> Candidate | None:
        return self.shared["best"]

    def offer(self, candidate: Candidate) -> None:
        """Keep the best candidate seen so far, so a run stopped early still has an answer."""
        if candidate.better_than(self.best):
            self.shared["best"] = candidate

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
        graph = self.graph
        depth = max((graph.node(p).depth for p in parents), default=-1) + 1
        node = Node(
            id=next(self._ids) if node_id is None else node_id,
            kind=kind,
            parents=tuple(parents),
            status=status,
            depth=depth,
            **fields,
        )
        graph.put(node)
        self.trace.emit(NodeEvent(run_id=self.run_id, node=node))
        return node

    def mark(self, node: Node, status: NodeStatus, **fields: Any) -> Node:
        """Change a recorded node (pruned, a score) and emit the new version."""
        updated = node.model_copy(update={"status": status, **fields})
        self.graph.put(updated)
        self.trace.emit(NodeEvent(run_id=self.run_id, node=updated))
        return updated

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
        """One model call under the budget. Raises :class:`BudgetExhausted` before sending when it can't fit,
        :class:`BackendError` when the backend fails; either way the node is recorded."""
        backend = backend or self.backend
        prompt_bound = prompt_tokens_upper_bound(backend, request.messages)
        ledger = self.ledger
        wanted = request.max_tokens
        # Calls in flight hold their worst case. Rather than shrink this call (or refuse it) because of
        # tokens they will likely not use, wait for them to settle while they might free enough room.
        while (
            wanted is not None
            and ledger.in_flight()
            and ledger.tokens_allowed(prompt_tokens=prompt_bound, n=request.n, model=backend.name) < wanted
        ):
            await ledger.settled_change()
        try:
            reservation = ledger.reserve(
                prompt_tokens=prompt_bound, max_tokens=wanted, n=request.n, min_tokens=min_tokens,
                model=backend.name,
            )
        except BudgetExhausted as exc:
            self.record(kind, parents, status="failed", strategy=strategy, request=request, error=str(exc),
                        data={"budget": exc.resource} | (data or {}))
            raise
        if reservation.max_tokens != request.max_tokens:
            request = request.model_copy(update={"max_tokens": reservation.max_tokens})
        node = self.record(kind, parents, status="running", strategy=strategy, request=request, data=data)
        sent = False
        started = time.perf_counter()
        limiter = self.engine.limiter(backend)
        try:
            if limiter is None:
                await anyio.lowlevel.checkpoint()  # no limit to wait for, but still a cancellation point
                sent = True
                completion = await backend.complete(request)
            else:
                async with limiter:
                    # A limiter slot handed over just as the run stopped must not send one more call.
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    sent = True
                    completion = await backend.complete(request)
        except anyio.get_cancelled_exc_class():
            # Sent and cancelled: the server may have billed it, so the worst case stays billed.
            if sent:
                self.ledger.settle(reservation, Usage())
                self._account(Usage(), reservation)  # a call whose usage is unknown, never a free one
            else:
                self.ledger.release(reservation)
            self.mark(node, "cancelled", latency_s=time.perf_counter() - started)
            raise
        except Exception as exc:
            self.ledger.settle(reservation, None)
            if sent:
                self.shared["usage"] = self.shared["usage"].add_failure()
            message = redact(str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}")
            self.mark(node, "failed", error=message, latency_s=time.perf_counter() - started)
            if isinstance(exc, BackendError):
                raise
            raise BackendError(message) from exc
        self.ledger.settle(reservation, completion.usage)
        self._account(completion.usage, reservation)
        text = answer = None
        if len(completion.choices) == 1:
            # The answer is on the node itself, so a graph or trace read alone shows what each call concluded.
            choice = completion.choices[0]
            text, answer = choice.text, None if choice.truncated_empty else extract_answer(choice.text)
        node = self.mark(
            node, "done", completion=completion, usage=completion.usage, latency_s=completion.latency_s,
            text=text, answer=answer,
        )
        return node, completion

    def _account(self, usage: Usage, reservation: Reservation) -> None:
        shared = self.shared
        shared["usage"] = shared["usage"].add(usage)
        price = reservation.price
        if price is not None:
            cost = price.cost(usage)
            if cost is not None:
                shared["cost"] = (shared["cost"] or 0.0) + cost

    def candidate(self, node: Node, choice: Choice, **fields: Any) -> Candidate:
        """A candidate from one choice; an empty reply cut off by the token limit has no answer."""
        completion = node.completion
        if completion is not None and len(completion.choices) == 1 and completion.choices[0] is choice:
            answer = node.answer  # call() extracted it already
        elif completion is None and node.text == choice.text:
            answer = node.answer  # a per-choice node of an n-request, extracted when it was recorded
        else:
            answer = None if choice.truncated_empty else extract_answer(choice.text)
        return Candidate(
            text=choice.text, answer=answer, node_id=node.id, finish_reason=choice.finish_reason,
            mean_logprob=choice.mean_logprob, **fields,
        )

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
        """Draw ``k`` samples of ``request`` as cheaply as the backend allows.

        One request with ``n=k`` where the backend honours ``n`` (a shared prompt, billed once); otherwise,
        or for the choices a server quietly left out, concurrent single requests. Never fewer than ``k``
        without saying so in :attr:`Samples.notes`. ``into`` collects the samples as they arrive (a caller
        can then vote over a partial draw if the run is stopped).
        """
        result = into if into is not None else Samples(requested=k)
        before = result.received
        if k > 1 and self.backend.capabilities.honours_n:
            await self._sample_call(request.model_copy(update={"n": k}), result, parents, kind, strategy)
            got = result.received - before
            if got < k and not result.budget_hit and not result.errors:
                result.notes.append(
                    f"the backend returned {got} of {k} choices; topping up with {k - got} calls"
                )
                await self._sample_concurrently(request, k - got, result, parents, kind, strategy)
        else:
            await self._sample_concurrently(request, k, result, parents, kind, strategy)
        if result.received - before < k:
            result.notes.append(f"received {result.received - before} of {k} samples")
        return result

    def set_provisional(self, pick: Callable[[], Candidate | None]) -> None:
        """Register how to pick an answer from work in progress, should the run be stopped mid-way
        (deadline, budget). The outermost strategy's pick wins; the engine falls back to :attr:`best`."""
        self.shared.setdefault("provisional", pick)

    def provisional(self) -> Candidate | None:
        pick = self.shared.get("provisional")
        candidate = pick() if pick is not None else None
        return candidate if candidate is not None else self.best

    async def _sample_concurrently(
        self, request: ChatRequest, k: int, result: Samples, parents: Sequence[int], kind: NodeKind,
        strategy: str | None,
    ) -> None:
        single = request.model_copy(update={"n": 1}) if request.n != 1 else request
        if k == 1:
            await self._sample_call(single, result, parents, kind, strategy)
            return
        async with anyio.create_task_group() as group:
            for _ in range(k):
                group.start_soon(self._sample_call, single, result, parents, kind, strategy)

    async def _sample_call(
        self, request: ChatRequest, result: Samples, parents: Sequence[int], kind: NodeKind,
        strategy: str | None,
    ) -> None:
        try:
            node, completion = await self.call(request, parents=parents, kind=kind, strategy=strategy)
        except BudgetExhausted:
            result.budget_hit = True
            return
        except BackendError as exc:
            result.errors.append(redact(str(exc)))
            return
        if len(completion.choices) == 1:
            candidate = self.candidate(node, completion.choices[0])
            result.candidates.append(candidate)
            return
        for index, choice in enumerate(completion.choices):
            answer = None if choice.truncated_empty else extract_answer(choice.text)
            child = self.record(kind, [node.id], strategy=strategy, text=choice.text, answer=answer,
                                data={"choice": index, "finish_reason": choice.finish_reason})
            result.candidates.append(self.candidate(child, choice))

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
        node = self.record(
            "verify", parents, strategy=strategy, answer=candidate.answer, score=verdict.score,
            data={"accepted": verdict.accepted, "feedback": verdict.feedback},
        )
        del node
        scored = candidate.model_copy(
            update={"score": verdict.score, "accepted": verdict.accepted, "feedback": verdict.feedback}
        )
        self.offer(scored)
        return scored
