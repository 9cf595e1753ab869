"""From a parsed request to what will run: the model check, the strategy, its options and the budget.

Selection order (documented in :mod:`thinkloop.serve.selection`): ``thinkloop.strategy``, then the
``thinkloop[SPEC]`` model prefix, then ``reasoning_effort`` through :mod:`thinkloop.serve.effort`, then the
server's default. Every refusal here is a 4xx before any model call is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.budget import Budget, Price
from thinkloop.serve.effort import PASSED_THROUGH, model_takes_effort, plan_for
from thinkloop.serve.errors import ApiError, bad_request
from thinkloop.serve.schema import DIRECT_ONLY, ChatCall
from thinkloop.serve.selection import ALIAS, parse_model_name
from thinkloop.serve.upstream import Upstream
from thinkloop.strategies.base import Conversation, Strategy
from thinkloop.strategies.registry import build_strategy


@dataclass(frozen=True)
class Settings:
    """The server's own choices (``thinkloop serve`` flags)."""

    strategy: str = "cot"
    api_key: str | None = None
    max_concurrency: int = 64
    budget_tokens: int | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    max_n: int = 8
    keep_traces: int = 256
    prices: dict[str, Price] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    strategy: Strategy
    spec: str
    selected_by: str
    """thinkloop | model | reasoning_effort | default"""
    budget: Budget
    conversation: Conversation
    ignored: tuple[str, ...] = ()


def plan_call(call: ChatCall, settings: Settings, upstream: Upstream) -> Plan:
    try:
        named = parse_model_name(call.model)
    except ValueError as exc:
        raise bad_request(str(exc), param="model", code="invalid_model") from None
    if named.model is not None and named.model != upstream.name:
        raise ApiError(
            404, f"model {named.model!r} is not served here; use {upstream.name!r} or {ALIAS!r} "
            f"(optionally with a strategy: 'thinkloop[sc:n=8]/{upstream.name}')",
            code="model_not_found", param="model",
        )
    if call.strategy is not None and named.strategy is not None and call.strategy != named.strategy:
        raise bad_request(
            f"two strategies chosen: {call.strategy!r} in 'thinkloop.strategy' and {named.strategy!r} in the "
            "model name; send one", param="model",
        )
    spec, selected_by = (call.strategy, "thinkloop") if call.strategy else (named.strategy, "model")
    extra_body: dict[str, Any] = {}
    effort_tokens = None
    if call.reasoning_effort is not None:
        if (upstream.sends_extra_body and model_takes_effort(upstream.name)
                and call.reasoning_effort in PASSED_THROUGH):  # 'auto' is thinkloop's own: it runs here
            extra_body["reasoning_effort"] = call.reasoning_effort  # the upstream thinks itself: pass it on
            if spec is None:
                spec, selected_by = "direct", "reasoning_effort"
        elif spec is not None:
            raise bad_request(
                f"'reasoning_effort' picks a strategy, and the request also names {spec!r}; send one",
                param="reasoning_effort",
            )
        else:
            effort = plan_for(call.reasoning_effort)
            spec, selected_by, effort_tokens = effort.strategy, "reasoning_effort", effort.tokens
    if spec is None:
        spec, selected_by = settings.strategy, "default"
    strategy = _build(spec, call)
    direct = strategy.name == "direct"
    tool_turns = any(m.role == "tool" or m.tool_calls for m in (*call.conversation.history,
                                                                  *call.conversation.followups))
    if call.direct_only or tool_turns:
        what = ", ".join(f"'{k}'" for k in call.direct_only) or "tool turns in 'messages'"
        if not direct:
            raise bad_request(
                f"{what} can only pass through to a single model call: use the 'direct' strategy "
                f"(strategy {spec!r} makes calls of its own)", param=next(iter(call.direct_only), "messages"),
                code="unsupported_parameter",
            )
        if not upstream.sends_extra_body:
            raise bad_request(f"{what}: the served model ({upstream.name}, in-process) cannot take them",
                              code="unsupported_parameter")
        extra_body.update({k: v for k, v in call.direct_only.items() if k in DIRECT_ONLY})
    ignored = list(call.ignored)
    if upstream.sends_extra_body:
        extra_body.update(call.sampling)
    else:
        ignored.extend(call.sampling)  # the in-process model takes no provider parameters: say so
    conversation = call.conversation.with_extra_body(extra_body or None)
    return Plan(
        strategy=strategy, spec=spec, selected_by=selected_by, conversation=conversation,
        budget=_budget(call, settings, upstream, effort_tokens), ignored=tuple(sorted(ignored)),
    )


def _build(spec: str, call: ChatCall) -> Strategy:
    overrides: dict[str, Any] = {}
    if call.max_tokens is not None:
        overrides["max_tokens"] = call.max_tokens
    if call.temperature is not None:
        overrides["temperature"] = call.temperature
    if spec.partition(":")[0].strip() == "direct":
        overrides["system_prompt"] = ""  # through the server, direct sends the client's messages as they are
    try:
        return build_strategy(spec, **overrides)
    except ConfigurationError as exc:
        raise bad_request(f"strategy {spec!r}: {exc}", param="thinkloop.strategy", code="invalid_strategy") from None


def _budget(call: ChatCall, settings: Settings, upstream: Upstream, effort_tokens: int | None) -> Budget:
    limits: dict[str, Any] = dict(call.budget)
    tokens = limits.get("tokens", effort_tokens)
    if settings.budget_tokens is not None:
        tokens = settings.budget_tokens if tokens is None else min(tokens, settings.budget_tokens)
    if tokens is not None:
        limits["tokens"] = tokens
    price = settings.prices.get(upstream.name)
    if price is not None:
        limits["price"] = price  # so every run reports its cost
    elif "dollars" in limits:
        raise bad_request(f"a dollars budget needs a price for {upstream.name!r}, and none is known",
                          param="thinkloop.budget")
    try:
        return Budget.make(**limits)
    except ConfigurationError as exc:
        raise bad_request(str(exc), param="thinkloop.budget") from None
