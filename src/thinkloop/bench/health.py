"""Finding a dead server early: a benchmark against a server that is not running stops after a few problems.

Without it, 300 problems against a stopped server each spent about 5 s on the SDK's retries and backoff, and
the run would have taken 25 minutes to record 300 failures, which the same command would then skip. So the
runner wraps each backend in a :class:`WatchedBackend` that notes, for the problem being run (a context
variable the runner sets around each problem), whether its calls reached the server. A :class:`ServerWatch`
per backend counts problems in a row whose every call failed to connect. Their records are held back, not
written: once ``limit`` of them come in a row with no call succeeding, the runner stops that backend's work
and drops them, so the same command runs them again once the server is up. A problem that reaches the server
ends the streak, and the held records are written as the failures they were. A model the server does not
have (:class:`ModelNotFound`) counts the same way: every problem would fail alike.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from thinkloop.backends.base import Backend, WrappedBackend
from thinkloop.bench.store import Record
from thinkloop.exceptions import BackendError, BackendUnavailable, ModelNotFound
from thinkloop.types import ChatRequest, Completion

UNREACHABLE_LIMIT = 5
"""Problems in a row whose calls all failed to connect before a backend's work stops."""


@dataclass
class ProblemCalls:
    """What one problem's model calls met: answers, and failures that every problem would meet (the server
    cannot be reached after the SDK's retries, or has no such model)."""

    answered: int = 0
    unreachable: int = 0
    last_error: BackendError | None = None

    @property
    def only_unreachable(self) -> bool:
        return self.unreachable > 0 and self.answered == 0


_CALLS: ContextVar[ProblemCalls | None] = ContextVar("thinkloop_bench_problem_calls", default=None)


def watch_problem() -> tuple[ProblemCalls, Any]:
    """Start noting the calls of the problem run in this task (and the tasks it starts); returns the notes
    and the token to pass to :func:`stop_watching`."""
    calls = ProblemCalls()
    return calls, _CALLS.set(calls)


def stop_watching(token: Any) -> None:
    _CALLS.reset(token)


class WatchedBackend(WrappedBackend):
    """A backend that tells the problem being run whether its calls reached the server; nothing else changes
    (same name, capabilities and attributes)."""

    async def complete(self, request: ChatRequest) -> Completion:
        calls = _CALLS.get()
        try:
            completion = await self.inner.complete(request)
        except (BackendUnavailable, ModelNotFound) as exc:
            if calls is not None:
                calls.unreachable += 1
                calls.last_error = exc
            raise
        if calls is not None:
            calls.answered += 1
        return completion


def server_of(backend: Backend) -> str:
    """The server's address for a message: its base URL, else the model's name."""
    base_url = getattr(backend, "base_url", None)
    return f"{backend.name} at {base_url}" if base_url else backend.name


@dataclass
class ServerWatch:
    """Consecutive problems that could not reach one backend's server, and their held-back records."""

    backend: Backend
    limit: int = UNREACHABLE_LIMIT
    streak: int = 0
    held: list[Record] = field(default_factory=list)
    last_error: BackendError | None = None

    def observe(self, calls: ProblemCalls, record: Record) -> Literal["write", "hold", "stop"]:
        """What to do with a finished problem's record: write it (with the held ones, when this problem
        reached the server), hold it (it could not connect), or stop (``limit`` in a row could not)."""
        if record.status == "failed" and calls.only_unreachable:
            self.streak += 1
            self.held.append(record)
            self.last_error = calls.last_error
            return "stop" if self.streak >= self.limit else "hold"
        if calls.answered:
            self.streak = 0
        return "write"

    def release(self) -> list[Record]:
        """The held records, to be written (the server answered after all, or the run ended)."""
        held, self.held = self.held, []
        return held

    def error(self) -> BackendError:
        """One line naming the server and what went wrong, as the error class the calls met."""
        if isinstance(self.last_error, ModelNotFound):
            return ModelNotFound(
                f"stopped: {self.streak} problems in a row found no such model at {server_of(self.backend)} "
                f"({self.last_error}). Records already finished are kept"
            )
        return BackendUnavailable(
            f"stopped: {self.streak} problems in a row could not reach {server_of(self.backend)} "
            f"({self.last_error}). Records already finished are kept; run the same command again once the "
            "server is up"
        )
