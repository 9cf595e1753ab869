"""A deterministic backend for tests, shipped with the library (like httpx's ``MockTransport``).

Replies come from a list (served in order, cycling is an error), or from a sync or async function of the
request. Token counts are computed (whitespace words, prompt bytes / 4) unless the reply gives them, and an
optional latency is slept with anyio so tests can check concurrency and cancellation.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio

from thinkloop.backends.base import BaseBackend, Capabilities
from thinkloop.types import ChatRequest, Choice, Completion, TokenLogprob, Usage

Reply = str | Choice | Completion
ReplyFunction = Callable[[ChatRequest], Reply | Awaitable[Reply]]


def _words(text: str) -> int:
    return max(1, len(text.split()))


def confident_reply(text: str, confidence: float | Sequence[float], *, top: int = 2) -> Choice:
    """A scripted reply whose tokens (its whitespace words) carry log-probabilities, for tests of
    confidence-aware strategies.

    ``confidence`` is each token's probability (one for all, or one per word, the last repeated): the
    chosen token gets ``log(p)`` and ``top - 1`` alternatives share ``1 - p`` evenly, as a server's
    ``top_logprobs`` would show a sure token (one dominant choice) or an unsure one (several close ones).
    """
    words = text.split() or [text]
    probs = [confidence] * len(words) if isinstance(confidence, int | float) else list(confidence)
    if not probs or any(not 0.0 < p <= 1.0 for p in probs):
        raise ValueError("confidences must be in (0, 1]")
    probs += [probs[-1]] * (len(words) - len(probs))
    tokens = []
    for index, (word, p) in enumerate(zip(words, probs, strict=False)):
        rest = max(1.0 - p, 1e-9) / max(top - 1, 1)
        alternatives = (
            TokenLogprob(token=word, logprob=math.log(p)),
            *(TokenLogprob(token=f"<alt{index}.{j}>", logprob=math.log(rest)) for j in range(top - 1)),
        )
        tokens.append(TokenLogprob(token=word, logprob=math.log(p), top_logprobs=alternatives))
    return Choice(text=text, finish_reason="stop", logprobs=tuple(tokens))


class ScriptedBackend(BaseBackend):
    """Serve scripted replies.

    Args:
        replies: a list of replies (``str``, :class:`Choice` or a whole :class:`Completion`) served in order,
            or a function (sync or async) from the request to a reply.
        latency: seconds to sleep per call (anyio sleep, so cancellable).
        capabilities: what to advertise; by default ``n`` is honoured by calling the function ``n`` times.
        name: the model name in traces.
    """

    def __init__(
        self,
        replies: Iterable[Reply] | ReplyFunction,
        *,
        latency: float = 0.0,
        capabilities: Capabilities | None = None,
        name: str = "scripted",
    ) -> None:
        if callable(replies):
            self._function: ReplyFunction | None = replies
            self._queue: list[Reply] = []
        else:
            self._function = None
            self._queue = list(replies)
        self._latency = latency
        self._capabilities = capabilities or Capabilities(honours_n=True, prompt_overhead_tokens=0)
        self._name = name
        self.requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def _one(self, request: ChatRequest) -> Reply:
        if self._function is None:
            if not self._queue:
                raise IndexError(f"ScriptedBackend ran out of replies after {len(self.requests)} requests")
            return self._queue.pop(0)
        reply = self._function(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return reply

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._latency:
                await anyio.sleep(self._latency)
            count = request.n if self._capabilities.honours_n else 1
            replies = [await self._one(request) for _ in range(count)]
        finally:
            self.in_flight -= 1
        if len(replies) == 1 and isinstance(replies[0], Completion):
            return replies[0]
        choices = tuple(self._choice(r, request) for r in replies)
        prompt = sum(len(m.content.encode()) for m in request.messages) // 4 + 1
        completion = sum(_words(c.text) for c in choices)
        return Completion(
            choices=choices,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
            latency_s=self._latency,
            model=self._name,
        )

    @staticmethod
    def _choice(reply: Reply, request: ChatRequest) -> Choice:
        if isinstance(reply, Completion):
            return reply.choices[0]
        if isinstance(reply, Choice):
            if reply.logprobs is not None and not request.logprobs:
                return reply.model_copy(update={"logprobs": None})  # as a server: only when asked
            return reply
        text = str(reply)
        if request.max_tokens is not None and _words(text) > request.max_tokens:
            return Choice(text=" ".join(text.split()[: request.max_tokens]), finish_reason="length")
        return Choice(text=text, finish_reason="stop")
