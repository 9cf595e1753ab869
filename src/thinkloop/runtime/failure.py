"""Why a call (or a step) failed, as a typed record, and the one ladder that turns failures into a stop reason.

A failed call's node carries its :class:`Failure` (``node.failure``), :meth:`RunContext.capture` returns one, and
:func:`decide_stop` is the only place that reads failures to say why a run stopped (``budget``, ``error`` or the
strategy's own reason). Code that needs the kind of a failure (a server answering 429 with ``Retry-After``, a
benchmark noticing a dead server) reads it here rather than parsing messages or wrapping the backend again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

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

if TYPE_CHECKING:
    from thinkloop.runtime.graph import Node

FailureKind = Literal[
    "budget",  # the budget refused the call before it was sent (``resource`` says which limit)
    "backend",  # the backend failed for another reason (a 4xx or 5xx answer, an unmapped error)
    "unavailable",  # the server could not be reached
    "timeout",  # no answer in time
    "rate_limited",  # 429 (``retry_after``: what the server asked for)
    "unauthorized",  # 401/403: the key was refused
    "model_not_found",  # no such model
    "replay_mismatch",  # a strict replay was asked for a call its trace does not hold
]

_KINDS: tuple[tuple[type[BackendError], FailureKind], ...] = (
    (RateLimited, "rate_limited"),
    (Unauthorized, "unauthorized"),
    (ModelNotFound, "model_not_found"),
    (BackendTimeout, "timeout"),
    (BackendUnavailable, "unavailable"),
)

UNREACHABLE: frozenset[FailureKind] = frozenset({"unavailable", "timeout", "unauthorized", "model_not_found"})
"""Failures every call to the same server would meet alike (it is down, hung, refuses the key, lacks the model)."""


class Failure(BaseModel):
    """One failure: what kind, a redacted message, and what the runtime needs to know about it.

    ``maybe_billed``: the request may have been billed (the call's reservation stayed billed when it was sent).
    ``status``: the HTTP status the server answered, where there was one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: FailureKind
    message: str = ""
    resource: str | None = None
    """For a budget refusal: the limit that refused it (``tokens``, ``calls``, ``dollars``, ``seconds``)."""
    retryable: bool = False
    maybe_billed: bool = False
    retry_after: float | None = None
    status: int | None = None

    @property
    def is_budget(self) -> bool:
        return self.kind == "budget"

    def __str__(self) -> str:
        return self.message

    def error(self) -> BackendError:
        """The backend error this failure records, as its own class (a budget refusal or a diverged replay, which
        are not backend errors, as a plain :class:`BackendError`)."""
        kind = next((t for t, k in _KINDS if k == self.kind), BackendError)
        return kind(
            self.message,
            retryable=self.retryable,
            retry_after=self.retry_after,
            maybe_billed=self.maybe_billed,
            status=self.status,
        )

    @classmethod
    def of(cls, exc: BaseException, message: str | None = None) -> Failure:
        """The record of an error the runtime knows (a budget refusal, a backend error, a diverged replay).

        ``message``: the text to keep (callers pass it redacted); default ``str(exc)``.
        """
        text = str(exc) if message is None else message
        if isinstance(exc, BudgetExhausted):
            return cls(kind="budget", message=text, resource=exc.resource)
        if isinstance(exc, ReplayMismatch):
            return cls(kind="replay_mismatch", message=text)
        if isinstance(exc, BackendError):
            kind: FailureKind = next((k for t, k in _KINDS if isinstance(exc, t)), "backend")
            return cls(
                kind=kind,
                message=text,
                retryable=exc.retryable,
                maybe_billed=exc.maybe_billed,
                retry_after=exc.retry_after,
                status=exc.status,
            )
        raise TypeError(f"not a failure the runtime records: {type(exc).__name__}")


def failure_of(node: Node) -> Failure | None:
    """A failed node's record; a node from an older trace (no ``failure`` field) gets one from its fields."""
    if node.status != "failed":
        return None
    if node.failure is not None:
        return node.failure
    data: dict[str, Any] = node.data or {}
    if "budget" in data:  # older traces marked a budget refusal this way
        return Failure(kind="budget", message=node.error or "", resource=str(data["budget"]))
    if node.error:
        return Failure(kind="backend", message=node.error, maybe_billed=bool(data.get("billed", False)))
    return None


S = TypeVar("S", bound=str)


def decide_stop(
    proposed: S,
    failures: Iterable[Failure],
    *,
    answered: bool,
    ended_by: Failure | None = None,
    time_left: bool = True,
) -> tuple[S | Literal["budget", "error", "deadline"], Failure | None]:
    """The one ladder from failures to a run's stop reason; returns it and the failure to report as the error.

    Args:
        proposed: the stop reason the strategy gave (or ``deadline``) when the run was not ended by a failure.
        failures: every failed call's record, in the order they were recorded.
        answered: the run has an answer to return.
        ended_by: the failure raised out of the strategy, which ended the run.
        time_left: the seconds budget is not spent (a budget refusal with no time left is a deadline).

    Rungs: a failure that ended the run decides (a budget refusal ``budget``, anything else ``error``);
    otherwise the strategy's reason stands, except that a run with no answer, or one its strategy says
    failed, reports the last infrastructure failure as ``error``, else ``budget`` when only the budget
    refused calls; a budget stop with no time left is a ``deadline``.
    """
    why: Failure | None = None
    stop: S | Literal["budget", "error", "deadline"] = proposed
    if ended_by is not None:
        stop = "budget" if ended_by.is_budget else "error"
        why = None if ended_by.is_budget else ended_by
    if stop == "budget" and not time_left:
        stop = "deadline"  # the time budget refused the next call
    if why is None and (stop == "error" or (not answered and stop == "completed")):
        failures = list(failures)
        errors = [f for f in failures if not f.is_budget and f.message]
        if errors:
            return "error", errors[-1]
        if failures and not answered:
            return "budget", None
    return stop, why
