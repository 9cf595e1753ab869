"""The backend protocol: one async method that does the work, like an httpx transport.

Strategies, the engine and verifiers see only this protocol; a backend says which of its failures are worth
retrying, and the runtime above it owns retries, budgets and tracing. The protocol names everything the
runtime calls, so nothing probes a backend with ``getattr``: subclass :class:`BaseBackend` and only ``name``,
``capabilities`` and ``complete`` are left to write.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from thinkloop.types import ChatRequest, Completion, Message


class RetryPolicy(BaseModel):
    """How the runtime retries a failed call that the backend marked ``retryable``.

    The runtime owns retries (the SDK's are off), so each attempt reserves its worst case in the budget
    before it is sent and appears in the trace as a node of its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(default=2, ge=0)
    """Attempts after the first."""
    initial_backoff: float = Field(default=0.5, ge=0)
    """Seconds before the first retry; doubled for each further one (with jitter)."""
    max_backoff: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=60.0, ge=0)
    """The longest ``Retry-After`` honoured; a server asking for more fails the call instead."""

    def delay(self, attempt: int, retry_after: float | None, jitter: float = 1.0) -> float | None:
        """Seconds to wait before retry ``attempt + 1``; ``None`` when the call should not be retried."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return min(self.max_backoff, self.initial_backoff * 2**attempt) * jitter


class Capabilities(BaseModel):
    """What a backend can do, so the engine can plan calls around it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    honours_n: bool = True
    """One request with ``n`` returns ``n`` choices (llama.cpp's server and Ollama do not)."""
    logprobs: bool = False
    system_messages: bool = True
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests served at once; ``None`` is "no known limit"."""
    prompt_overhead_tokens: int = Field(default=64, ge=0)
    """Upper bound on tokens the chat template adds (role markers, a default system prompt)."""
    per_message_overhead_tokens: int = Field(default=8, ge=0)
    image_tokens: int = Field(default=2_000, ge=0)
    """Upper bound on what one image part of a request is billed as (OpenAI's high detail is at most 1,445
    for gpt-4o; models that bill images at a multiple, such as gpt-4o-mini's, need this raised)."""
    retry: RetryPolicy = RetryPolicy()
    """How the runtime retries this backend's retryable errors."""


@runtime_checkable
class Backend(Protocol):
    """Anything that turns a :class:`ChatRequest` into a :class:`Completion`, and can be closed.

    Backends are async context managers: ``async with backend:`` closes its connections (or unloads its
    model) on the loop that opened them.
    """

    @property
    def name(self) -> str:
        """The model's name as it appears in traces, prices and reports."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def complete(self, request: ChatRequest) -> Completion: ...

    def count_prompt_tokens(self, messages: tuple[Message, ...]) -> int | None:
        """The prompt's exact token count (template included) when the backend has its tokenizer at hand,
        else ``None`` (the runtime then uses a safe upper bound)."""
        ...

    async def aclose(self) -> None:
        """Release connections, processes or memory. Safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class BaseBackend:
    """Defaults for the optional parts of :class:`Backend`: no tokenizer, nothing to close."""

    def count_prompt_tokens(self, messages: tuple[Message, ...]) -> int | None:
        return None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class WrappedBackend(BaseBackend):
    """A backend in front of another (to watch or count its calls): everything but what a subclass overrides
    goes to ``inner``, attributes such as ``base_url`` included."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.inner.complete(request)

    def count_prompt_tokens(self, messages: tuple[Message, ...]) -> int | None:
        return self.inner.count_prompt_tokens(messages)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, attribute: str) -> object:
        if attribute == "inner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


def count_prompt_tokens_upper_bound(messages: tuple[Message, ...], capabilities: Capabilities) -> int:
    """A safe upper bound on prompt tokens without a tokenizer.

    A byte-level BPE token covers at least one UTF-8 byte, so the byte length bounds the content; the
    template's own tokens are bounded by the capabilities' overheads. Earlier tool calls a message carries
    are sent too, so they count as their JSON's bytes.
    """
    content = 0
    tools = False
    for message in messages:
        text = message.content
        content += len(text) if text.isascii() else len(text.encode("utf-8"))  # ASCII: a byte a character
        tools = tools or message.tool_calls is not None or message.tool_call_id is not None
    if tools:
        content += _tool_call_bytes(messages)
    return content + capabilities.prompt_overhead_tokens + capabilities.per_message_overhead_tokens * len(messages)


def _tool_call_bytes(messages: tuple[Message, ...]) -> int:
    total = 0
    for message in messages:
        if message.tool_calls:
            total += _json_bytes(list(message.tool_calls))
        if message.tool_call_id:
            total += len(message.tool_call_id.encode("utf-8"))
    return total


def _json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))


_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
_TOOL_OVERHEAD_TOKENS = 16
"""Tokens a provider's rendering of one tool adds beyond its schema's bytes (its namespace and type lines)."""


def extras_tokens_upper_bound(extra_body: dict[str, object] | None, capabilities: Capabilities) -> int:
    """A safe upper bound on the prompt tokens of what ``extra_body`` adds to a request: tools, a response
    format, messages with image parts. Text is bounded by its JSON's bytes (a token is at least a byte), each
    image part by :attr:`Capabilities.image_tokens` (never by the bytes of its base64 data), each tool by its
    schema plus a rendering overhead."""
    if not extra_body:
        return 0
    images = 0

    def strip_images(value: object) -> object:
        nonlocal images
        if isinstance(value, dict):
            if value.get("type") in _IMAGE_PART_TYPES:
                images += 1
                return None
            return {key: strip_images(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [strip_images(item) for item in value]
        return value

    text = strip_images(extra_body)
    tools = extra_body.get("tools") or extra_body.get("functions") or ()
    count = len(tools) if isinstance(tools, list | tuple) else 1
    return _json_bytes(text) + images * capabilities.image_tokens + count * _TOOL_OVERHEAD_TOKENS


def prompt_tokens_upper_bound(backend: Backend, messages: tuple[Message, ...]) -> int:
    """The backend's own count when it has one, else the byte bound (earlier tool calls included either way:
    a backend's counter may leave them out)."""
    counted = backend.count_prompt_tokens(messages)
    if counted is not None:
        return counted + _tool_call_bytes(messages)
    return count_prompt_tokens_upper_bound(messages, backend.capabilities)


def request_tokens_upper_bound(backend: Backend, request: ChatRequest) -> int:
    """A safe upper bound on the prompt tokens of everything ``request`` sends: its messages (tool calls
    included) and what ``extra_body`` adds (tools, images, a response format), which the server bills too."""
    bound = prompt_tokens_upper_bound(backend, request.messages)
    if request.extra_body:
        bound += extras_tokens_upper_bound(request.extra_body, backend.capabilities)
    return bound
