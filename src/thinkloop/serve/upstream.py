"""The served backend, wrapped so a request can learn how its upstream calls failed, and hold a reply's total.

The engine turns a backend's failure into a stop reason and a message; the server also needs the kind (an
upstream 429 is answered with a 429 and ``Retry-After``, an upstream 400 such as a context-length error with a
400, anything else with a 502). :class:`Upstream` notes both on the request's :class:`CallNotes`, found
through a context variable: each request sets its own, and the tasks its run starts inherit it.

It also keeps ``max_completion_tokens`` as o1 defines it, a bound on every completion token of the reply
(visible and reasoning): each call's ``max_tokens`` is cut to what is left of it, held before the call is sent
and settled to the real count after, so concurrent calls cannot both take the last tokens. A call that cannot
get one token per choice is refused (:class:`CompletionAllowanceSpent`), and the reply says the budget stopped it.
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass

import anyio

from thinkloop.backends.base import WrappedBackend
from thinkloop.exceptions import BackendError, RateLimited
from thinkloop.types import ChatRequest, Completion

_STATUS = re.compile(r" answered (4\d\d): ")
"""How :class:`thinkloop.backends.openai.OpenAIBackend` words an HTTP error status (its errors carry no code)."""


class CompletionAllowanceSpent(BackendError):
    """The request's ``max_completion_tokens`` has nothing left for another call."""


@dataclass
class CallNotes:
    """What one request's upstream calls ran into, and what is left of its completion allowance."""

    rate_limited: bool = False
    retry_after: float | None = None
    """What the upstream last asked to wait, in seconds."""
    calls: int = 0
    client_error: int | None = None
    """An upstream 4xx other than 429 (the request itself is at fault: a context-length 400)."""
    completion_left: int | None = None
    """Completion tokens the reply may still use (``max_completion_tokens``); ``None``: no such bound."""
    allowance_spent: bool = False


CURRENT_NOTES: contextvars.ContextVar[CallNotes | None] = contextvars.ContextVar("thinkloop_serve_notes", default=None)


class Upstream(WrappedBackend):
    """A backend that forwards everything to ``inner`` and records per request what its calls ran into."""

    @property
    def sends_extra_body(self) -> bool:
        """Whether provider parameters and tool turns reach the model (only through an OpenAI-compatible API)."""
        from thinkloop.backends.openai import OpenAIBackend

        return isinstance(self.inner, OpenAIBackend)

    @property
    def is_reasoning_model(self) -> bool:
        """A native reasoning model (o1, o3 ...): its profile takes no sampling parameters."""
        profile = getattr(self.inner, "profile", None)
        return profile is not None and not profile.sampling_params

    @property
    def folds_system(self) -> bool:
        """Whether system messages are folded into the first user message (o1's profile has no system role)."""
        profile = getattr(self.inner, "profile", None)
        return profile is not None and not profile.system_role

    async def complete(self, request: ChatRequest) -> Completion:
        notes = CURRENT_NOTES.get()
        if notes is None:
            return await self.inner.complete(request)
        notes.calls += 1
        held = 0
        if notes.completion_left is not None:
            request, held = _hold(notes, request)
        billed = True
        try:
            completion = await self.inner.complete(request)
        except RateLimited as exc:
            notes.rate_limited = True
            notes.retry_after = exc.retry_after
            billed = exc.maybe_billed
            raise
        except BackendError as exc:
            status = _STATUS.search(str(exc))
            if status is not None:
                notes.client_error = int(status.group(1))
            billed = exc.maybe_billed
            raise
        except anyio.get_cancelled_exc_class():
            raise  # sent and cancelled: what it held stays spent
        finally:
            if held and not billed:
                notes.completion_left = (notes.completion_left or 0) + held
        if held:
            used = completion.usage.completion_tokens
            if used is not None:
                notes.completion_left = (notes.completion_left or 0) + held - min(used, held)
        return completion


def _hold(notes: CallNotes, request: ChatRequest) -> tuple[ChatRequest, int]:
    """Cut the call's ``max_tokens`` to what is left of the reply's allowance and hold it (synchronously)."""
    left = notes.completion_left or 0
    per_choice = left // request.n
    if per_choice < 1:
        notes.allowance_spent = True
        raise CompletionAllowanceSpent(
            f"max_completion_tokens: {left} completion tokens are left of the reply's allowance, too few for "
            f"another call of {request.n} choice(s)"
        )
    if request.max_tokens is None or request.max_tokens > per_choice:
        request = request.model_copy(update={"max_tokens": per_choice})
    held = request.n * (request.max_tokens or per_choice)
    notes.completion_left = left - held
    return request, held
