"""Values that cross the backend boundary: messages, requests, completions and token usage.

Everything here is a frozen pydantic model: a request or a completion is a fact about one call and must not
change after it is recorded in a trace. Usage keeps *unknown* (``None``) apart from zero, because servers omit
usage (cache hits, some proxies) and a budget must not read "unknown" as "free".
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

Role = Literal["system", "user", "assistant", "tool"]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Value):
    """One chat message.

    ``tool_calls`` (on an assistant message) and ``tool_call_id`` (on a ``tool`` message) carry a tool-use
    conversation through unchanged, in the OpenAI wire shape; only backends that send them accept them.
    """

    role: Role
    content: str
    tool_calls: tuple[dict[str, Any], ...] | None = None
    tool_call_id: str | None = None


class ChatRequest(_Value):
    """What a strategy asks of a backend: the messages and the sampling settings.

    ``None`` means "not set, use the server's default". ``temperature=0`` is a real value (greedy), never
    read as unset.
    """

    messages: tuple[Message, ...] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=128)
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    """With ``logprobs``: how many most likely alternatives to return at each position (``None``: none).
    Confidence measures (DeepConf) read them; a backend that cannot give them returns only the chosen token's."""
    extra_body: dict[str, Any] | None = None
    """Provider parameters passed through unchanged (``tools``, ``response_format``, ``reasoning_effort``).
    A backend that cannot send them refuses the request rather than dropping them."""
    thinking_budget: int | None = Field(default=None, ge=0)
    """The most tokens an open reasoning model may think before it is made to answer (s1's budget forcing).
    Only a backend that can continue a completion honours it (the in-process llama.cpp one); ``OpenAIBackend``
    refuses such a request before sending it rather than ignore the cap (test doubles hand the request to
    your script as it is). ``None``: think as long as the model likes."""

    @classmethod
    def of(cls, prompt: str, *, system: str | None = None, **sampling: object) -> ChatRequest:
        """Build a request from a user prompt and an optional system message."""
        messages = [Message(role="system", content=system)] if system else []
        messages.append(Message(role="user", content=prompt))
        return cls(messages=tuple(messages), **sampling)  # type: ignore[arg-type]


class TokenLogprob(_Value):
    """One generated token's log-probability and, when the request asked ``top_logprobs``, the most likely
    tokens at that position (the chosen one usually among them)."""

    token: str
    logprob: float
    top_logprobs: tuple[TokenLogprob, ...] | None = None

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> TokenLogprob:
        """One ``logprobs.content`` entry of the OpenAI chat API, alternatives included when sent."""
        top = entry.get("top_logprobs")
        alternatives = tuple(cls(token=t["token"], logprob=t["logprob"]) for t in top) if top else None
        return cls(token=entry["token"], logprob=entry["logprob"], top_logprobs=alternatives)


class Choice(_Value):
    """One sampled continuation.

    ``finish_reason="length"`` means the token limit cut it off; with empty text (hidden reasoning ate the
    limit) it is a budget outcome, not an answer: see :attr:`truncated_empty`.

    ``reasoning`` is an open reasoning model's visible thinking (``reasoning_content``, ``reasoning`` or a
    ``<think>`` block), kept apart from ``text``: answers are extracted from ``text`` only.
    """

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    """The model's tool calls, in the OpenAI wire shape (only when the request passed ``tools``)."""

    @property
    def truncated_empty(self) -> bool:
        return self.finish_reason == "length" and not self.text.strip()

    @property
    def mean_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return sum(t.logprob for t in self.logprobs) / len(self.logprobs)


class Usage(_Value):
    """Tokens billed for one call. ``None`` is "the server did not say", never zero.

    ``reasoning_tokens`` are thinking tokens and are a *part* of ``completion_tokens`` (as in the OpenAI
    API): totals never add them twice. ``reasoning_tokens_estimated`` says the server did not count them
    and the backend estimated them from the reasoning text it got.
    """

    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    reasoning_tokens: NonNegativeInt | None = None
    cached_prompt_tokens: NonNegativeInt | None = None
    reasoning_tokens_estimated: bool = False

    @property
    def known(self) -> bool:
        return self.prompt_tokens is not None and self.completion_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        if not self.known:
            return None
        return self.prompt_tokens + self.completion_tokens  # type: ignore[operator]


class RunUsage(_Value):
    """The sum of many calls' usage.

    Calls whose usage was unknown are counted in ``calls_without_usage`` rather than silently adding zero;
    ``calls`` counts every call sent, the ``failed_calls`` among them (billed nothing) included.
    ``estimated_reasoning_tokens`` is the part of ``reasoning_tokens`` that backends estimated rather than
    servers reported, so a sum says whether its reasoning tokens are a count, an estimate, or partly both.
    """

    calls: NonNegativeInt = 0
    calls_without_usage: NonNegativeInt = 0
    failed_calls: NonNegativeInt = 0
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0
    reasoning_tokens: NonNegativeInt = 0
    cached_prompt_tokens: NonNegativeInt = 0
    estimated_reasoning_tokens: NonNegativeInt = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage) -> RunUsage:
        """Return a new sum with one more call's usage in it.

        Reasoning and cached tokens are parts of completion and prompt tokens; a report that claims more
        of a part than its whole (or a part without its whole) is clamped, so sums keep that shape.
        """
        prompt = usage.prompt_tokens or 0
        completion = usage.completion_tokens or 0
        reasoning = min(usage.reasoning_tokens or 0, completion)
        return RunUsage(
            calls=self.calls + 1,
            calls_without_usage=self.calls_without_usage + (0 if usage.known else 1),
            failed_calls=self.failed_calls,
            prompt_tokens=self.prompt_tokens + prompt,
            completion_tokens=self.completion_tokens + completion,
            reasoning_tokens=self.reasoning_tokens + reasoning,
            cached_prompt_tokens=self.cached_prompt_tokens + min(usage.cached_prompt_tokens or 0, prompt),
            estimated_reasoning_tokens=self.estimated_reasoning_tokens
            + (reasoning if usage.reasoning_tokens_estimated else 0),
        )

    def add_failure(self) -> RunUsage:
        """Return a new sum with one more call that failed (sent, but nothing billed)."""
        return self.model_copy(update={"calls": self.calls + 1, "failed_calls": self.failed_calls + 1})

    def __add__(self, other: RunUsage) -> RunUsage:
        if not isinstance(other, RunUsage):
            return NotImplemented
        return RunUsage.model_construct(
            **{name: getattr(self, name) + getattr(other, name) for name in RunUsage.model_fields}
        )


class Completion(_Value):
    """A backend's answer to one :class:`ChatRequest`: one or more choices, usage and latency."""

    choices: tuple[Choice, ...] = Field(min_length=1)
    usage: Usage = Usage()
    latency_s: float = Field(default=0.0, ge=0.0)
    model: str | None = None

    @property
    def text(self) -> str:
        return self.choices[0].text


# --- one style for every subpackage's __init__ ---------------------------------------------------------
# (Here, at the bottom of the layers, because every subpackage uses it: a module map in its docstring and
# its public names loaded on first use, so importing a package costs only the modules a caller touches.)
def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map each public name
    to the module that defines it: relative to the package, or a whole ``thinkloop.`` name for one that lives
    elsewhere (a shared module the package re-exports)."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = module if module.startswith("thinkloop.") else f"{package}.{module}"
        value = getattr(importlib.import_module(target), name)
        vars(sys.modules[package])[name] = value  # found once: later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
