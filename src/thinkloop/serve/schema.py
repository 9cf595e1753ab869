"""The chat request as thinkloop reads it: every field checked, each problem one 400 that names it.

A request is parsed into a :class:`ChatCall` before anything runs. Nothing is dropped silently: parameters
that only a single pass-through call can honour (``tools``, ``response_format``, ``logprobs``) are kept for
``direct`` and refused for other strategies; sampling parameters (``top_p``, ``seed``, ``stop``, penalties)
ride on every call; anything else a client sends that thinkloop does not use is listed back in the
response's ``thinkloop.ignored``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from thinkloop.serve.effort import EFFORTS
from thinkloop.serve.errors import bad_request
from thinkloop.strategies.base import Conversation
from thinkloop.types import Message

ROLES = {"system", "developer", "user", "assistant", "tool"}
DIRECT_ONLY = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "logprobs", "top_logprobs")
"""Honoured by one model call as it stands: passed through for ``direct``, a 400 for other strategies."""
SAMPLING = ("top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "user")
"""Passed to every model call of the run."""
_READ = {
    "model",
    "messages",
    "n",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "reasoning_effort",
    "thinkloop",
    "optillm_approach",
    *DIRECT_ONLY,
    *SAMPLING,
}
_BUDGET_KEYS = {"tokens", "dollars", "seconds"}


@dataclass(frozen=True)
class ChatCall:
    """A parsed ``POST /v1/chat/completions`` body."""

    model: str
    conversation: Conversation
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    """``max_tokens``: the limit of each model call (each reply the strategy draws)."""
    max_completion_tokens: int | None = None
    """``max_completion_tokens`` as o1 defines it: every completion token of the reply, visible and reasoning
    (here: every upstream call's completion tokens, summed)."""
    temperature: float | None = None
    reasoning_effort: str | None = None
    strategy: str | None = None
    """From ``extra_body={"thinkloop": {"strategy": ...}}``."""
    budget: dict[str, float] = field(default_factory=dict)
    direct_only: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    optillm_approach: str | None = None
    """optillm's body field naming an approach (see :mod:`thinkloop.serve.optillm`)."""


def parse_chat(body: Any, *, max_n: int) -> ChatCall:
    """Check a decoded JSON body; raise a 400 :class:`ApiError` naming the first problem."""
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a non-empty string", param="model")
    history, question, followups = _messages(body.get("messages"))
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not _is_int(n) or not 1 <= n <= max_n:
        raise bad_request(f"'n' must be an integer from 1 to {max_n} (independent runs), got {n!r}", param="n")
    stream = body.get("stream", False) or False
    if not isinstance(stream, bool):
        raise bad_request(f"'stream' must be a boolean, got {stream!r}", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("'stream_options.include_usage' must be a boolean", param="stream_options")
    max_tokens = _positive(body, "max_tokens")
    max_completion_tokens = _positive(body, "max_completion_tokens")
    temperature = body.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
        raise bad_request(f"'temperature' must be a number from 0 to 2, got {temperature!r}", param="temperature")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        raise bad_request(
            f"'reasoning_effort' must be one of {', '.join(EFFORTS)}; got {effort!r}", param="reasoning_effort"
        )
    strategy, budget = _thinkloop(body.get("thinkloop"))
    direct_only = {k: body[k] for k in DIRECT_ONLY if body.get(k) is not None}
    sampling = {k: body[k] for k in SAMPLING if body.get(k) is not None}
    ignored = tuple(sorted(k for k in body if k not in _READ and body[k] is not None))
    return ChatCall(
        model=model,
        conversation=Conversation(question, history, followups=followups),
        n=n,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        max_completion_tokens=max_completion_tokens,
        temperature=temperature,
        reasoning_effort=effort,
        strategy=strategy,
        budget=budget,
        direct_only=direct_only,
        sampling=sampling,
        ignored=ignored,
        optillm_approach=_optillm(body.get("optillm_approach")),
    )


def _optillm(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise bad_request("'optillm_approach' must be an approach name such as 'moa'", param="optillm_approach")
    return raw.strip()


def _positive(body: dict[str, Any], key: str) -> int | None:
    """A positive integer field; ``null`` is the same as leaving it out."""
    value = body.get(key)
    if value is not None and (not _is_int(value) or value < 1):
        raise bad_request(f"'{key}' must be a positive integer, got {value!r}", param=key)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _messages(raw: Any) -> tuple[list[Message], str, list[Message]]:
    """History, the question (the last user message) and any turns after it (tool results)."""
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' is required and must be a non-empty list", param="messages")
    messages = [_message(item, index) for index, item in enumerate(raw)]
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        raise bad_request("'messages' has no user message: there is no question to answer", param="messages")
    followups = messages[last_user + 1 :]
    if any(m.role not in ("assistant", "tool") for m in followups):
        raise bad_request("only assistant and tool turns may follow the last user message", param="messages")
    return messages[:last_user], messages[last_user].content, followups


def _message(item: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be an object", param=where)
    role = item.get("role")
    if role not in ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(sorted(ROLES))}; got {role!r}", param=where)
    content = _content(item.get("content"), where)
    tool_calls = item.get("tool_calls")
    if tool_calls is not None and (role != "assistant" or not isinstance(tool_calls, list)):
        raise bad_request(f"{where}.tool_calls must be a list on an assistant message", param=where)
    tool_call_id = item.get("tool_call_id")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise bad_request(f"{where} is a tool message without a 'tool_call_id'", param=where)
    if content is None:
        if not tool_calls:
            raise bad_request(f"{where}.content is required", param=where)
        content = ""
    # A developer message is the newer name for a system message (OpenAI treats them alike).
    return Message(
        role="system" if role == "developer" else role,
        content=content,
        tool_calls=tuple(tool_calls) if tool_calls else None,
        tool_call_id=tool_call_id if role == "tool" else None,
    )


def _content(content: Any, where: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of text parts", param=where)
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise bad_request(f"{where}.content: only text parts are supported, got {kind!r}", param=where)
        texts.append(part["text"])
    return "\n".join(texts)


def _thinkloop(raw: Any) -> tuple[str | None, dict[str, float]]:
    if raw is None:
        return None, {}
    if not isinstance(raw, dict):
        raise bad_request('\'thinkloop\' must be an object: {"strategy": SPEC, "budget": {...}}', param="thinkloop")
    unknown = sorted(set(raw) - {"strategy", "budget"})
    if unknown:
        raise bad_request(f"'thinkloop' has unknown keys {unknown}; known: strategy, budget", param="thinkloop")
    strategy = raw.get("strategy")
    if strategy is not None and (not isinstance(strategy, str) or not strategy.strip()):
        raise bad_request("'thinkloop.strategy' must be a spec string such as 'sc:n=8'", param="thinkloop")
    budget = raw.get("budget") or {}
    if not isinstance(budget, dict):
        raise bad_request("'thinkloop.budget' must be an object", param="thinkloop")
    unknown = sorted(set(budget) - _BUDGET_KEYS)
    if unknown:
        raise bad_request(
            f"'thinkloop.budget' has unknown keys {unknown}; known: tokens, dollars, seconds", param="thinkloop"
        )
    for key, value in budget.items():
        if not _is_number(value) or value <= 0 or (key == "tokens" and not _is_int(value)):
            kind = "a positive integer" if key == "tokens" else "a positive number"
            raise bad_request(f"'thinkloop.budget.{key}' must be {kind}, got {value!r}", param="thinkloop")
    return strategy, dict(budget)
