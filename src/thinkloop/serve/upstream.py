"""The served backend, wrapped so a request can hold a reply's total of completion tokens.

How upstream calls failed is not learnt here: every failed call's node carries its typed
:class:`~thinkloop.runtime.failure.Failure` (kind, HTTP status, ``Retry-After``), and the server reads them from
the result (:func:`upstream_refusal`). :class:`Upstream` counts a request's calls on its :class:`CallNotes`,
found through a context variable: each request sets its own, and the tasks its run starts inherit it.

It keeps ``max_completion_tokens`` as o1 defines it, a bound on every completion token of the reply
(visible and reasoning): each call's ``max_tokens`` is cut to what is left of it, held before the call is sent
and settled to the real count after, so concurrent calls cannot both take the last tokens. A call that cannot
get one token per choice is refused (:class:`CompletionAllowanceSpent`), and the reply says the budget stopped it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from thinkloop.backends.base import WrappedBackend
from thinkloop.backends.profiles import ModelProfile
from thinkloop.exceptions import BackendError
from thinkloop.runtime.failure import Failure
from thinkloop.types import ChatRequest, Completion


class CompletionAllowanceSpent(BackendError):
    """The request's ``max_completion_tokens`` has nothing left for another call."""


@dataclass
class CallNotes:
    """How many upstream calls one request made, and what is left of its completion allowance."""

    calls: int = 0
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
    def profile(self) -> ModelProfile | None:
        """What the upstream model accepts (:mod:`thinkloop.backends.profiles`), where its backend has a profile
        (an OpenAI-compatible API); ``None`` for an in-process model, which takes everything a request sends."""
        profile = getattr(self.inner, "profile", None)
        return profile if isinstance(profile, ModelProfile) else None

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
        except BackendError as exc:
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


@dataclass(frozen=True)
class UpstreamRefusal:
    """Why the upstream turned a run's calls down, as the server answers it: an HTTP status and the wait."""

    status: int
    retry_after: float | None = None


def upstream_refusal(failures: Sequence[Failure]) -> UpstreamRefusal | None:
    """An upstream 429 (answered with a 429 and the wait it last asked for) or, failing that, the last 4xx the
    request itself is at fault for (a context-length 400: answered with the same status); ``None`` for anything
    else (answered 502). A refused key (401/403) and a missing model (404) are the server's fault, not the
    client's, so they are not passed on."""
    limited = [f for f in failures if f.kind == "rate_limited"]
    if limited:
        return UpstreamRefusal(429, limited[-1].retry_after)
    client = [f.status for f in failures if f.kind == "backend" and f.status is not None and 400 <= f.status < 500]
    return UpstreamRefusal(client[-1]) if client else None
