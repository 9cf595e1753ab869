"""Re-run a run from its record: a backend that serves recorded completions, in the order they came.

Every model call a run makes is a node in its trace with the request it sent and the completion it got.
:class:`ReplayBackend` is fed those (request, completion) pairs in the order the completions arrived
(:func:`thinkloop.runtime.trace.replay` reads them from a trace file) and hands them back, so the same
strategy on the same question with the same budget grows the same graph, with no model and no network: for
debugging a run, for tests, and for showing a run again.

Exact, not just plausible:

- each call gets the completion its own node got in the record (the runtime, pinned to the replay, asks by
  node: :meth:`ReplayBackend.complete_call`), so concurrent identical requests map back exactly, each branch
  to its own reply; a call whose node failed in the record fails again the same way (billed or not, retried
  or not); a call whose node asks for another request than the record holds is a :class:`ReplayMismatch`
  (strict). Without nodes (a record given as bare pairs, a call from outside a run), each request gets the
  first unserved recorded completion whose recorded request is the same;
- a completion is handed back only after every completion that arrived before it in the recorded run, so
  decisions that depended on which reply came first (adaptive self-consistency's early stop, best-of-n's
  first accepted answer) come out the same;
- every call of the run goes to the replay, a judge's on another backend included (the engine pins them);
- ``strict`` fails the run with :class:`ReplayMismatch` at the first request the record does not hold;
  without it, a request that matches nothing gets the next unserved completion, and a run that asks for more
  than was recorded gets a :class:`BackendError` (as from a server that went away).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc

from thinkloop.backends.base import BaseBackend, Capabilities
from thinkloop.exceptions import BackendError, ConfigurationError, ReplayMismatch
from thinkloop.types import ChatRequest, Completion, Message

__all__ = ["RecordedCall", "RecordedFailure", "ReplayBackend"]

RecordedCall = tuple[ChatRequest | None, Completion]
"""One recorded model call: the request as sent (``None`` when the record lacks it) and its completion."""


@dataclass(frozen=True)
class RecordedFailure:
    """A call that was sent and failed in the record: the replay fails it again the same way."""

    request: ChatRequest | None
    error: str
    retried: bool
    """Whether the recorded run sent the call again (its next attempt is in the record)."""
    billed: bool = True


class ReplayBackend(BaseBackend):
    """Serve recorded completions in the order they arrived.

    Args:
        calls: (request, completion) pairs in the order the completions arrived.
        name: the model name to report.
        strict: fail with :class:`ReplayMismatch` when a request matches no unserved recorded one, instead of
            serving the next unserved completion.
        capabilities: what to advertise. By default ``honours_n`` is true exactly when the record holds a
            request with ``n > 1`` (so the run asks in the same shape as before); give the original
            backend's capabilities when its token overheads shaped a tight budget.
        run_id: the recorded run's id, for messages.
        sent_before: for each recorded completion, how many calls the run had sent when it arrived; a
            completion is then handed back only once as many calls have been asked for, so calls that were
            in flight when a decision cancelled them are in flight again.
        nodes: for each recorded completion, the node that got it: calls are then mapped back by their node
            (:meth:`complete_call`), not by their request alone.
        failures: calls that were sent and failed in the record, by node: they fail again the same way.
    """

    def __init__(
        self,
        calls: Iterable[RecordedCall],
        *,
        name: str = "replay",
        strict: bool = False,
        capabilities: Capabilities | None = None,
        run_id: str | None = None,
        sent_before: Sequence[int] | None = None,
        nodes: Sequence[int] | None = None,
        failures: Mapping[int, RecordedFailure] | None = None,
    ) -> None:
        self.calls: list[RecordedCall] = list(calls)
        self._by_node: dict[int, int] | None = (
            {node: index for index, node in enumerate(nodes)} if nodes is not None else None
        )
        """Each recorded completion's index, by the node that got it (``None``: the record has no nodes)."""
        self._failures = dict(failures or {})
        self.sent_before = list(sent_before) if sent_before is not None else None
        """For each recorded completion, how many calls had been sent when it arrived (cancelled ones too)."""
        if not self.calls and strict:
            raise ConfigurationError("ReplayBackend: the record holds no completed call")
        self.run_id = run_id
        self._name = name
        if capabilities is None:
            honours_n = any(request is not None and request.n > 1 for request, _ in self.calls)
            capabilities = Capabilities(honours_n=honours_n)
        self._capabilities = capabilities
        self.strict = strict
        self.served = 0
        self._unserved = list(range(len(self.calls)))
        self._done = [False] * len(self.calls)
        self._next = 0
        """Every recorded completion before this index has been handed back."""
        self._turn = anyio.Event()
        self._asked = 0
        """Calls asked for so far (whether or not the record has them)."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def remaining(self) -> int:
        """Recorded completions not served yet."""
        return len(self.calls) - self.served

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.complete_call(request, None)

    async def complete_call(self, request: ChatRequest, node: int | None) -> Completion:
        """The recorded reply of the call at graph node ``node`` (``None``: unknown, matched by request)."""
        self._asked += 1
        self._wake()
        if node is not None and node in self._failures:
            raise self._failed(node, request)
        index = self._claim(request, node)
        while index is None:
            # Nothing unserved was recorded for this request: in the recorded run it was cancelled (an early
            # stop) or never sent. Let the rest of the run go on; it will likely cancel this call. If the
            # whole run stalls instead, the replay has diverged from the record.
            if not await self._progress():
                # Strict: a diverged replay fails the run. Lenient: the record ran out, like a dead server.
                raise (ReplayMismatch if self.strict else BackendError)(self._mismatch(request))
            index = self._claim(request, node)
        while self._next < index:  # replies that came first in the record come first again
            if not await self._progress() and self._next < index:
                if self.strict:
                    raise ReplayMismatch(
                        f"ReplayBackend: the run no longer asks for recorded call {self._next + 1}, which came "
                        f"before call {index + 1} in the record of run {self.run_id or '?'}"
                    )
                break  # lenient: serve out of order rather than stall
        wanted = self.sent_before[index] if self.sent_before is not None else 0
        while self._asked < wanted:  # the calls that were in flight when this reply came are in flight again
            if not await self._progress():
                break  # they are no longer asked for: serve rather than stall
        self._done[index] = True
        while self._next < len(self.calls) and self._done[self._next]:
            self._next += 1
        self._wake()
        return self.calls[index][1]

    def _wake(self) -> None:
        self._turn.set()
        self._turn = anyio.Event()

    async def _progress(self) -> bool:
        """Wait until another recorded completion is handed back or another call is asked for (true), or every
        other task of the run is blocked without either (false: nothing can change any more)."""
        served, asked, turn = self._next, self._asked, self._turn

        async def first(wait: Callable[[], Awaitable[object]], group: anyio.abc.TaskGroup) -> None:
            await wait()
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(first, turn.wait, group)
            group.start_soon(first, anyio.wait_all_tasks_blocked, group)
        return self._next != served or self._asked != asked

    def _failed(self, node: int, request: ChatRequest) -> Exception:
        """The recorded failure of ``node``, raised again: retryable at once when the record retried it."""
        failure = self._failures.pop(node)
        if failure.request is not None and failure.request != request and self.strict:
            return ReplayMismatch(
                f"ReplayBackend: call node {node} of run {self.run_id or '?'} asks for another request than the "
                f"record holds ({_difference(failure.request, request)})"
            )
        return BackendError(
            failure.error,
            retryable=failure.retried,
            retry_after=0.0 if failure.retried else None,
            maybe_billed=failure.billed,
        )

    def _claim(self, request: ChatRequest, node: int | None = None) -> int | None:
        """Take the completion recorded for this call's node; without nodes, the first unserved recorded call
        with this request (or, lenient, the next unserved one)."""
        if node is not None and self._by_node is not None:
            index = self._by_node.get(node)
            if index is not None and index in self._unserved:
                recorded = self.calls[index][0]
                if recorded is None or recorded == request:
                    self._unserved.remove(index)
                    self.served += 1
                    return index
                if self.strict:
                    raise ReplayMismatch(
                        f"ReplayBackend: call {self.served + 1} differs from every recorded request (next recorded: "
                        f"{_difference(recorded, request)}; the record's call at node {node} of run "
                        f"{self.run_id or '?'})"
                    )
            elif self.strict:
                return None  # not recorded for this node: cancelled in the record, or the run diverged
        for index in self._unserved:
            if self.calls[index][0] == request:
                break
        else:
            if self.strict or not self._unserved:
                return None
            index = self._unserved[0]
        self._unserved.remove(index)
        self.served += 1
        return index

    def _mismatch(self, request: ChatRequest) -> str:
        if not self._unserved:
            return (
                f"ReplayBackend: the record of run {self.run_id or '?'} holds {len(self.calls)} completed calls; "
                f"the run asked for call {self.served + 1} ({_short(request)})"
            )
        recorded = self.calls[self._unserved[0]][0]
        return (
            f"ReplayBackend: call {self.served + 1} differs from every recorded request "
            f"(next recorded: {_difference(recorded, request)})"
        )


def _difference(recorded: ChatRequest | None, request: ChatRequest) -> str:
    """The first field that differs, with both values (messages shortened)."""
    if recorded is None:
        return "the record has no request"
    for field in ChatRequest.model_fields:
        before, after = getattr(recorded, field), getattr(request, field)
        if before != after:
            if field == "messages":
                return f"messages: recorded {_short_messages(before)}, got {_short_messages(after)}"
            return f"{field}: recorded {before!r}, got {after!r}"
    return "no field differs"


def _short(request: ChatRequest) -> str:
    return _short_messages(request.messages)


def _short_messages(messages: tuple[Message, ...]) -> str:
    text = " | ".join(f"{m.role}: {m.content}" for m in messages)
    return repr(text if len(text) <= 160 else text[:157] + "...")
