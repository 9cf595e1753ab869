"""thinkloop's errors. Every error the library raises on purpose derives from :class:`ThinkloopError`.

::

    ThinkloopError
    ├── ConfigurationError          bad options, a bad budget, an unknown strategy (raised before any call)
    ├── BackendError                a model call failed (``retryable``: the runtime may send it again)
    │   ├── BackendUnavailable      the server cannot be reached (connection refused, DNS, dead process)
    │   ├── BackendTimeout          no answer in time: the request was sent and may have been billed
    │   ├── ModelNotFound           the model file or model name does not exist
    │   ├── Unauthorized            401/403: the server refused the key (every call would fail alike)
    │   └── RateLimited             429 (``retry_after``: what the server asked for)
    ├── BudgetExhausted             a call cannot fit in what is left of the budget (reserve refused)
    ├── ReplayMismatch              a replayed run asked for a call its trace did not record (strict replay)
    ├── StoreLocked                 another process is writing the results file or trace (one writer per file)
    ├── SandboxUnavailable          the program verifier cannot isolate code and was not told to run unguarded
    ├── ExecutorError               a bench executor lost every worker (all Ray actors died)
    └── DatasetError                a malformed dataset line or a missing field (names file, line and field)

Lower-level errors (openai, llama_cpp, OS) are mapped once, at the backend, with ``raise ... from exc``.
Retries are the runtime's (:meth:`thinkloop.runtime.context.RunContext.call`), so every attempt is reserved
in the budget first: a backend only says whether an error is worth retrying and whether the failed request
may have been billed.
"""

from __future__ import annotations

from typing import Any


class ThinkloopError(Exception):
    """Root of every error thinkloop raises on purpose."""


class ConfigurationError(ThinkloopError, ValueError):
    """An option or a budget is invalid; raised before any model call is made."""


class BackendError(ThinkloopError):
    """A model call failed: an infrastructure failure, never a wrong answer.

    Args:
        retryable: sending the same request again may succeed (429, 408, 409, 5xx, a reset connection).
        retry_after: seconds the server asked the client to wait (``Retry-After``), if it said.
        maybe_billed: the request reached the server, which may have billed it (a timeout, a 5xx); the
            runtime then keeps the call's reservation billed rather than guessing that it was free.
        status: the HTTP status the server answered, where there was one (``None``: no answer, or not HTTP);
            the server reads it to answer an upstream 4xx with the same status.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        maybe_billed: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.maybe_billed = maybe_billed
        self.status = status


class BackendUnavailable(BackendError):
    """The backend cannot be reached."""

    retryable = True


class BackendTimeout(BackendError):
    """The backend did not answer in time. The request was sent, so it may have been billed."""

    retryable = True

    def __init__(
        self,
        message: str = "",
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        maybe_billed: bool = True,
        status: int | None = None,
    ) -> None:
        super().__init__(
            message, retryable=retryable, retry_after=retry_after, maybe_billed=maybe_billed, status=status
        )


class ModelNotFound(BackendError):
    """The model (a GGUF file or a model name) does not exist."""


class Unauthorized(BackendError):
    """The server refused the credentials (401 or 403): no call to it can succeed until the key is fixed."""


class RateLimited(BackendError):
    """The server answered 429 (``retry_after``: how long it asked to wait)."""

    retryable = True


class BudgetExhausted(ThinkloopError):
    """A call was refused because it cannot fit in what is left of the budget."""

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message)
        self.resource = resource


class ReplayMismatch(ThinkloopError):
    """A strict replay was asked for a call that its trace does not hold: the run diverged from the record.

    Not a :class:`BackendError`: a diverged replay is a bug to see, not a failed sample to vote around.
    """


class StoreLocked(ThinkloopError):
    """Another process holds the results file or trace open for writing; the message names it."""


class SandboxUnavailable(ThinkloopError):
    """The program verifier cannot isolate untrusted code on this machine."""


class DatasetError(ThinkloopError, ValueError):
    """A dataset line is malformed or lacks a field; the message names the file, the line and the field."""


class ExecutorError(ThinkloopError):
    """A benchmark executor cannot go on (every Ray actor died); the records written so far stay."""


def describe_validation_error(exc: Any, *, unknown: str = "option") -> str:
    """One short clause per problem of a pydantic ``ValidationError``, naming the field and the value given."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown {unknown} {where!r}")
        elif where:
            parts.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
        else:
            parts.append(error["msg"].removeprefix("Value error, "))
    return "; ".join(parts)
