"""The served backend, wrapped so a request can learn how its upstream calls failed.

The engine turns a backend's failure into a stop reason and a message; the server also needs the kind (an
upstream 429 is answered with a 429 and ``Retry-After``, anything else with a 502). :class:`Upstream`
notes rate limiting on the request's :class:`CallNotes`, found through a context variable: each request sets
its own, and the tasks its run starts inherit it.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from thinkloop.backends.base import WrappedBackend
from thinkloop.exceptions import RateLimited
from thinkloop.types import ChatRequest, Completion


@dataclass
class CallNotes:
    """What one request's upstream calls ran into."""

    rate_limited: bool = False
    retry_after: float | None = None
    """What the upstream last asked to wait, in seconds."""
    calls: int = 0


CURRENT_NOTES: contextvars.ContextVar[CallNotes | None] = contextvars.ContextVar("thinkloop_serve_notes", default=None)


class Upstream(WrappedBackend):
    """A backend that forwards everything to ``inner`` and records rate limiting per request."""

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

    async def complete(self, request: ChatRequest) -> Completion:
        notes = CURRENT_NOTES.get()
        if notes is not None:
            notes.calls += 1
        try:
            return await self.inner.complete(request)
        except RateLimited as exc:
            if notes is not None:
                notes.rate_limited = True
                notes.retry_after = exc.retry_after
            raise
