"""The backend protocol: one async method, like an httpx transport.

Strategies, the engine and verifiers see only this protocol; retries belong to the SDK under a backend,
budgets and tracing to the engine above it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from thinkloop.types import ChatRequest, Completion, Message


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


@runtime_checkable
class Backend(Protocol):
    """Anything that turns a :class:`ChatRequest` into a :class:`Completion`."""

    @property
    def name(self) -> str:
        """The model's name as it appears in traces, prices and reports."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def complete(self, request: ChatRequest) -> Completion: ...


def count_prompt_tokens_upper_bound(messages: tuple[Message, ...], capabilities: Capabilities) -> int:
    """A safe upper bound on prompt tokens without a tokenizer.

    A byte-level BPE token covers at least one UTF-8 byte, so the byte length bounds the content; the
    template's own tokens are bounded by the capabilities' overheads.
    """
    content = sum(len(m.content.encode("utf-8")) for m in messages)
    return content + capabilities.prompt_overhead_tokens + capabilities.per_message_overhead_tokens * len(messages)


def prompt_tokens_upper_bound(backend: Backend, messages: tuple[Message, ...]) -> int:
    """Use the backend's own tokenizer when it has one (``count_prompt_tokens``), else the byte bound."""
    counter = getattr(backend, "count_prompt_tokens", None)
    if counter is not None:
        counted = counter(messages)
        if counted is not None:
            return counted
    return count_prompt_tokens_upper_bound(messages, backend.capabilities)
