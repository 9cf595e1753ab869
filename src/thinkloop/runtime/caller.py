"""Calling a model: the one choke point every model call of a run passes through.

:meth:`Caller.call` reserves budget before each try, waits for the backend's capacity limiter, calls the
backend, settles the budget to the real usage and records the try as a graph node, whatever happens (done,
failed, cancelled). It also owns retries, so each retried try is reserved and recorded too: its node's
``data["attempt"]`` is its number (2 for the first retry; absent on a first try).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from thinkloop.backends.base import Backend, request_tokens_upper_bound
from thinkloop.backends.replay import ReplayBackend
from thinkloop.exceptions import BackendError, BudgetExhausted, ReplayMismatch
from thinkloop.runtime.budget import BudgetLedger
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.graph import Node, NodeKind, check_kind
from thinkloop.runtime.recorder import Recorder
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.trace import redact
from thinkloop.types import ChatRequest, Choice, Completion, Usage

AnswerExtractor = Callable[[str], "str | None"]
"""Pulls the final answer out of a reply's text (``None``: no answer in it)."""

LimiterFor = Callable[[Backend], "anyio.CapacityLimiter | None"]
"""The capacity limiter shared by every call to a backend (``None``: unlimited)."""


def no_answer(text: str) -> str | None:
    """The extractor of a run that was given none: replies carry no extracted answer."""
    return None


def _unlimited(backend: Backend) -> anyio.CapacityLimiter | None:
    return None


class Caller:
    """Sends a run's model calls: reserve, send, settle, record, retry.

    Args:
        backend: where calls without ``backend=`` go.
        ledger: the budget every call reserves from and settles to.
        recorder: where every try is recorded.
        limiter_for: the engine's capacity limiter per backend.
        extract: pulls answers out of replies (``None``: replies carry no answer).
        pinned: send every call to ``backend``, even those that name another (a replayed run: the judge's
            recorded replies come from the same trace); ``backend`` is then a
            :class:`~thinkloop.backends.replay.ReplayBackend`, asked by each call's node.
    """

    def __init__(
        self,
        backend: Backend,
        ledger: BudgetLedger,
        recorder: Recorder,
        *,
        limiter_for: LimiterFor | None = None,
        extract: AnswerExtractor | None = None,
        pinned: bool = False,
    ) -> None:
        self.backend = backend
        self.ledger = ledger
        self.recorder = recorder
        self.limiter_for: LimiterFor = limiter_for if limiter_for is not None else _unlimited
        self.extract: AnswerExtractor = extract if extract is not None else no_answer
        self.pinned = pinned
        self._by_node = pinned and isinstance(backend, ReplayBackend)
        """Calls go to a replay, which is asked by each call's node (:meth:`ReplayBackend.complete_call`)."""

    def with_ledger(self, ledger: BudgetLedger) -> Caller:
        """The same caller, reserving from another ledger (a sub-strategy's slice of the budget)."""
        return Caller(
            self.backend, ledger, self.recorder, limiter_for=self.limiter_for, extract=self.extract, pinned=self.pinned
        )

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

        Every try reserves its worst case first and is its own node. Raises :class:`BudgetExhausted`
        before sending when a try can't fit, :class:`BackendError` when the backend fails for good.
        """
        check_kind(kind)
        backend = self.backend if backend is None or self.pinned else backend
        retries = 0
        while True:
            try:
                return await self._send_once(request, parents, kind, strategy, backend, min_tokens, data, retries)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                delay = backend.capabilities.retry.delay(retries, exc.retry_after, random.uniform(0.5, 1.0))
                if delay is None or delay >= self.ledger.seconds_left():
                    raise
                await anyio.sleep(delay)
                retries += 1

    async def _send_once(
        self,
        request: ChatRequest,
        parents: Sequence[int],
        kind: NodeKind,
        strategy: str | None,
        backend: Backend,
        min_tokens: int,
        data: dict[str, Any] | None,
        retries: int,
    ) -> tuple[Node, Completion]:
        """One try of a call: reserved, sent, settled and recorded (``retries``: tries before this one)."""
        if retries:
            data = (data or {}) | {"attempt": retries + 1}
        prompt_bound = request_tokens_upper_bound(backend, request)
        ledger = self.ledger
        recorder = self.recorder
        try:
            # Calls in flight hold their worst case. Rather than shrink this call (or refuse it) because of
            # tokens they will likely not use, wait for them to settle while they might free enough room.
            while (
                reservation := ledger.reserve_or_wait(
                    prompt_tokens=prompt_bound,
                    max_tokens=request.max_tokens,
                    n=request.n,
                    min_tokens=min_tokens,
                    model=backend.name,
                )
            ) is None:
                await ledger.settled_change()
        except BudgetExhausted as exc:
            # ``data["budget"]`` is what readers of traces without ``failure`` know a refusal by.
            recorder.record(
                kind,
                parents,
                status="failed",
                strategy=strategy,
                request=request,
                error=str(exc),
                failure=Failure.of(exc),
                data={"budget": exc.resource} | (data or {}),
            )
            raise
        if reservation.max_tokens != request.max_tokens:
            request = request.model_copy(update={"max_tokens": reservation.max_tokens})
        node = recorder.call_started(kind, tuple(parents), request, strategy, data)
        sent = False
        started = time.perf_counter()
        limiter = self.limiter_for(backend)
        try:
            if limiter is None:
                # No limit to wait for. A cancellation point, without a trip round the event loop: the backend
                # yields while it waits on its I/O, and the seconds budget is checked at every reservation.
                await anyio.lowlevel.checkpoint_if_cancelled()
                sent = True
                completion = await (
                    backend.complete_call(request, node.id)  # type: ignore[attr-defined]
                    if self._by_node
                    else backend.complete(request)
                )
            else:
                async with limiter:
                    # A limiter slot handed over just as the run stopped must not send one more call.
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    sent = True
                    # A replay maps the call back by its node, not by its request alone.
                    completion = await (
                        backend.complete_call(request, node.id)  # type: ignore[attr-defined]
                        if self._by_node
                        else backend.complete(request)
                    )
            if not isinstance(completion, Completion):
                raise BackendError(
                    f"{backend.name} returned {type(completion).__name__}, not a Completion", maybe_billed=True
                )
        except anyio.get_cancelled_exc_class():
            # Sent and cancelled: the server may have billed it, so the worst case stays billed.
            if sent:
                ledger.settle(reservation, Usage())
            else:
                ledger.release(reservation)
            recorder.mark(node, "cancelled", latency_s=time.perf_counter() - started)
            raise
        except ReplayMismatch as exc:
            ledger.release(reservation)
            diverged = "the replay diverged from its record"
            recorder.mark(node, "failed", error=diverged, failure=Failure.of(exc, diverged))
            raise
        except Exception as exc:
            # Billed unless proven otherwise: an error the backend did not map may have come after the server
            # generated (and billed) the reply.
            error = (
                exc
                if isinstance(exc, BackendError)
                else BackendError(f"{type(exc).__name__}: {exc}", maybe_billed=True)
            )
            billed = sent and error.maybe_billed
            if billed:
                ledger.settle(reservation, Usage())  # a timeout or a 5xx: the server may have done the work
            elif sent:
                ledger.settle(reservation, None)
            else:
                ledger.release(reservation)
            message = redact(str(error))
            # What a replay needs to fail this call the same way: whether it was billed.
            failure = {"billed": billed} if sent else None
            recorder.mark(
                node,
                "failed",
                error=message,
                latency_s=time.perf_counter() - started,
                failure=Failure.of(error, message),
                **({"data": (node.data or {}) | failure} if failure else {}),
            )
            if error is exc:
                raise
            raise BackendError(message, maybe_billed=error.maybe_billed) from exc
        ledger.settle(reservation, completion.usage)
        text = answer = None
        choices = completion.choices
        if len(choices) == 1:
            # The answer is on the node itself, so a graph or trace read alone shows what each call concluded.
            choice = choices[0]
            text, answer = choice.text, self.answer_of(choice)
        node = recorder.mark(
            node,
            "done",
            completion=completion,
            usage=completion.usage,
            latency_s=completion.latency_s,
            text=text,
            answer=answer,
        )
        return node, completion

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
            text=choice.text,
            answer=answer,
            node_id=node.id,
            finish_reason=choice.finish_reason,
            mean_logprob=choice.mean_logprob,
            reasoning=choice.reasoning,
            **fields,
        )
