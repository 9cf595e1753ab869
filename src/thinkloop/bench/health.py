"""Finding a dead server early: a benchmark against a server that is not running stops after a few problems.

Without it, each of 300 problems against a stopped server spends about 5 s on retries and backoff: the run
takes 25 minutes to record 300 failures, which the same command would then skip. So the
runner reads, for each problem it ran, whether its calls reached the server from the typed failures on the
run's nodes (:class:`ProblemCalls`, :meth:`ProblemCalls.note`). A :class:`ServerWatch`
per backend counts problems in a row whose every call failed to connect. Their records are held back, not
written: once ``limit`` of them come in a row with no call succeeding, the runner stops that backend's work
and drops them, so the same command runs them again once the server is up. A problem that reaches the server
ends the streak, and the held records are written as the failures they were. A model the server does not
have (:class:`ModelNotFound`), a key it refuses (:class:`Unauthorized`) and a server that takes connections but
never answers in time (:class:`BackendTimeout`: blackholed or hung) count the same way: every problem would
fail alike.

Before any of that, :func:`check_servers` is the gate: each server is asked ``GET /models`` with a short
timeout before the grid starts, and a server that cannot be reached, does not answer or refuses the key stops
the run at once with one line naming the server and the cause (nothing sent, nothing recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from thinkloop.backends.base import Backend
from thinkloop.bench.store import Record
from thinkloop.exceptions import BackendError, BackendTimeout, BackendUnavailable, ModelNotFound, Unauthorized
from thinkloop.runtime.failure import UNREACHABLE
from thinkloop.runtime.result import Result

UNREACHABLE_LIMIT = 5
"""Problems in a row whose calls all failed to connect before a backend's work stops."""


@dataclass
class ProblemCalls:
    """What one problem's model calls met: answers, and failures that every problem would meet (the server
    cannot be reached after the runtime's retries, or has no such model)."""

    answered: int = 0
    unreachable: int = 0
    last_error: BackendError | None = None

    @property
    def only_unreachable(self) -> bool:
        return self.unreachable > 0 and self.answered == 0

    def note(self, result: Result) -> None:
        """Count a finished run's calls: those answered, and those that failed in a way every call to the same
        server would (its failed nodes' typed records say so)."""
        self.answered += sum(1 for n in result.graph.nodes() if n.request is not None and n.status == "done")
        for failure in result.failures:
            if failure.kind in UNREACHABLE:
                self.unreachable += 1
                self.last_error = failure.error()


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
    gate: BackendError | None = None
    """The server failed its check before the grid (:func:`check_server`): this is the error to raise."""

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
        if self.gate is not None:
            return self.gate
        if isinstance(self.last_error, Unauthorized):
            return Unauthorized(
                f"stopped: {server_of(self.backend)} refused the key ({self.last_error}). Records already "
                "finished are kept; fix the key and run the same command again"
            )
        if isinstance(self.last_error, BackendTimeout):
            return BackendTimeout(
                f"stopped: {self.streak} problems in a row got no answer in time from {server_of(self.backend)} "
                f"({self.last_error}). Records already finished are kept; run the same command again once the "
                "server answers",
                retryable=False,
            )
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


async def check_server(backend: Backend) -> BackendError | None:
    """The gate before a backend's problems: ``None`` when its server answers (or it is not to be asked: only an
    :class:`OpenAIBackend` built with ``check_server=True`` is, as ``thinkloop bench run`` builds them), else
    one error naming the server and the cause (it cannot be reached, does not answer, refuses the key)."""
    from thinkloop.backends.openai import OpenAIBackend

    if not isinstance(backend, OpenAIBackend) or not backend.check_server_first:
        return None  # in-process models, test doubles and backends built without the check are not asked
    try:
        await backend.ensure_checked()
    except BackendError as exc:
        kind = type(exc)
        return kind(
            f"stopped before the first problem: {server_of(backend)} failed its check ({exc}). Nothing was sent "
            "and nothing recorded; run the same command again once it answers",
            retryable=False,
        )
    return None
