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
from thinkloop.serve.ceiling import Ceiling, flag, worst_case_samples
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
    keep_trace_bytes: int = 64 * 1024 * 1024
    """Kept traces' size at most (estimated from their text): a few huge runs cannot grow the process."""
    prices: dict[str, Price] = field(default_factory=dict)
    ceiling: Ceiling = field(default_factory=Ceiling)
    allowed_hosts: tuple[str, ...] | None = None
    """``Host`` headers accepted (``host`` or ``host:port``); ``None``: any (a server bound to a public address)."""
    body_seconds: float = 30.0
    """How long a client may take to send its request body."""
    keys_path: str | None = None
    """The sqlite file of named keys and their allowances (``--keys``); ``None``: none."""
    shared_traces: str | None = None
    """A sqlite file where finished traces are kept for every ``--workers`` process; ``None``: memory only."""


@dataclass(frozen=True)
class Plan:
    strategy: Strategy
    spec: str
    selected_by: str
    """thinkloop | model | optillm | reasoning_effort | default"""
    budget: Budget
    conversation: Conversation
    ignored: tuple[str, ...] = ()
    changed: dict[str, str] = field(default_factory=dict)
    """Parameters the server changed, each with what it did and why (``thinkloop.changed`` in the reply)."""
    completion_allowance: int | None = None
    """``max_completion_tokens``: every completion token of one run's reply (each of ``n`` runs has its own)."""


def plan_call(call: ChatCall, settings: Settings, upstream: Upstream) -> Plan:
    model_name, optillm = _optillm(call, upstream)
    try:
        named = parse_model_name(model_name)
    except ValueError as exc:
        raise bad_request(str(exc), param="model", code="invalid_model") from None
    if named.model is not None and named.model != upstream.name:
        raise ApiError(
            404,
            f"model {named.model!r} is not served here; use {upstream.name!r} or {ALIAS!r} "
            f"(optionally with a strategy: 'thinkloop[sc:n=8]/{upstream.name}')",
            code="model_not_found",
            param="model",
        )
    if call.strategy is not None and named.strategy is not None and call.strategy != named.strategy:
        raise bad_request(
            f"two strategies chosen: {call.strategy!r} in 'thinkloop.strategy' and {named.strategy!r} in the "
            "model name; send one",
            param="model",
        )
    spec, selected_by = (call.strategy, "thinkloop") if call.strategy else (named.strategy, "model")
    if optillm is not None:
        if spec is not None:
            raise bad_request(
                f"two strategies chosen: {spec!r} and optillm's approach ({optillm!r}); send one",
                param="optillm_approach" if call.optillm_approach else "model",
            )
        spec, selected_by = optillm, "optillm"
    extra_body: dict[str, Any] = {}
    effort_tokens = None
    if call.reasoning_effort is not None:
        if (
            upstream.sends_extra_body and model_takes_effort(upstream.name) and call.reasoning_effort in PASSED_THROUGH
        ):  # 'auto' is thinkloop's own: it runs here
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
    changed: dict[str, str] = {}
    strategy = _build(spec, call, settings.ceiling, changed)
    _check_worst_case(strategy, spec, call.n, settings.ceiling)
    direct = strategy.name == "direct"
    tool_turns = any(
        m.role == "tool" or m.tool_calls for m in (*call.conversation.history, *call.conversation.followups)
    )
    if call.direct_only or tool_turns:
        what = ", ".join(f"'{k}'" for k in call.direct_only) or "tool turns in 'messages'"
        if not direct:
            raise bad_request(
                f"{what} can only pass through to a single model call: use the 'direct' strategy "
                f"(strategy {spec!r} makes calls of its own)",
                param=next(iter(call.direct_only), "messages"),
                code="unsupported_parameter",
            )
        if not upstream.sends_extra_body:
            raise bad_request(
                f"{what}: the served model ({upstream.name}, in-process) cannot take them", code="unsupported_parameter"
            )
        extra_body.update({k: v for k, v in call.direct_only.items() if k in DIRECT_ONLY})
    ignored = list(call.ignored)
    if upstream.sends_extra_body:
        extra_body.update(call.sampling)
    else:
        ignored.extend(call.sampling)  # the in-process model takes no provider parameters: say so
    profile = upstream.profile
    if profile is not None and profile.is_reasoning_model:  # the backend drops what the model would reject
        ignored.extend(
            k
            for k in ("temperature", "top_p")
            if k in call.sampling or (k == "temperature" and call.temperature is not None)
        )
    if profile is not None and not profile.system_role and any(m.role == "system" for m in call.conversation.history):
        changed["messages"] = (
            "system and developer messages are folded into the first user message "
            f"(the upstream {upstream.name} takes no system role)"
        )
    conversation = call.conversation.with_extra_body(extra_body or None)
    budget = _budget(call, settings, upstream, effort_tokens, changed)
    allowance = None
    if call.max_completion_tokens is not None:
        allowance = call.max_completion_tokens
        if budget.tokens is not None and allowance > budget.tokens:
            changed["max_completion_tokens"] = (
                f"{call.max_completion_tokens} → {budget.tokens}: no run may use more than its token budget"
            )
            allowance = budget.tokens
    return Plan(
        strategy=strategy,
        spec=spec,
        selected_by=selected_by,
        conversation=conversation,
        budget=budget,
        ignored=tuple(sorted(set(ignored))),
        changed=changed,
        completion_allowance=allowance,
    )


def _build(spec: str, call: ChatCall, ceiling: Ceiling, changed: dict[str, str]) -> Strategy:
    overrides: dict[str, Any] = {}
    max_tokens = call.max_tokens
    per_run = ceiling.per_run(call.n).get("tokens")
    if max_tokens is not None and per_run is not None and max_tokens > per_run:
        changed["max_tokens"] = (
            f"{max_tokens} → {per_run}: the server's limit of {ceiling.tokens} tokens per request ({flag('tokens')})"
        )
        max_tokens = per_run
    direct = spec.partition(":")[0].strip() == "direct"
    if direct and max_tokens is None:
        # The client set no limit: send none of our own but the ceiling (the budget cuts it to what is left).
        if call.max_completion_tokens is not None:
            max_tokens = min(call.max_completion_tokens, per_run or call.max_completion_tokens)
        elif per_run is not None:
            max_tokens = per_run
            changed["max_tokens"] = (
                f"not sent → at most {per_run} less the prompt: the server's limit of "
                f"{ceiling.tokens} tokens per request ({flag('tokens')})"
            )
    if max_tokens is not None:
        overrides["max_tokens"] = max_tokens
    if call.temperature is not None:
        overrides["temperature"] = call.temperature
    if direct:
        overrides["system_prompt"] = ""  # through the server, direct sends the client's messages as they are
    try:
        return build_strategy(spec, **overrides)
    except ConfigurationError as exc:
        raise bad_request(f"strategy {spec!r}: {exc}", param="thinkloop.strategy", code="invalid_strategy") from None


def _optillm(call: ChatCall, upstream: Upstream) -> tuple[str, str | None]:
    """The model name without an optillm slug, and the spec optillm's approach runs as (``None``: none named)."""
    from thinkloop.serve.optillm import spec_for, split_slug

    spec = None
    if call.optillm_approach is not None and call.optillm_approach != "auto":
        spec = spec_for(call.optillm_approach, param="optillm_approach")
    model = call.model
    approach, rest = split_slug(model) if model != upstream.name else (None, model)
    if approach is not None:
        slug = spec_for(approach, param="model")
        if spec is not None and slug != spec:
            raise bad_request(
                f"two optillm approaches: {call.optillm_approach!r} in 'optillm_approach' and "
                f"{approach!r} in the model name; send one",
                param="optillm_approach",
            )
        spec, model = slug, rest
    return model, spec


def _check_worst_case(strategy: Strategy, spec: str, n: int, ceiling: Ceiling) -> None:
    """Refuse a strategy that could draw more samples than the request may make calls, before it makes any."""
    if ceiling.calls is None:
        return
    samples = worst_case_samples(strategy)
    if samples is not None and samples * n > ceiling.calls:
        times = f" × n={n}" if n > 1 else ""
        raise bad_request(
            f"strategy {spec!r}{times} may draw up to {samples * n} model samples, over this server's limit of "
            f"{ceiling.calls} calls per request ({flag('calls')}); ask for fewer samples",
            param="thinkloop.strategy",
            code="over_request_limit",
        )


def _budget(
    call: ChatCall,
    settings: Settings,
    upstream: Upstream,
    effort_tokens: int | None,
    changed: dict[str, str],
) -> Budget:
    limits: dict[str, Any] = dict(call.budget)
    if "tokens" not in limits and effort_tokens is not None:
        limits["tokens"] = effort_tokens
    if settings.budget_tokens is not None:
        limits["tokens"] = min(limits.get("tokens", settings.budget_tokens), settings.budget_tokens)
    price = settings.prices.get(upstream.name)
    if price is not None:
        limits["price"] = price  # so every run reports its cost
    elif "dollars" in limits:
        raise bad_request(
            f"a dollars budget needs a price for {upstream.name!r}, and none is known", param="thinkloop.budget"
        )
    ceiling = settings.ceiling
    for limit, most in ceiling.per_run(call.n).items():
        if limit == "dollars" and price is None:
            continue  # a model with no known price costs nothing here; tokens still bound it
        asked = limits.get(limit)
        if asked is None:
            limits[limit] = most
        elif asked > most:
            limits[limit] = most
            whole = getattr(ceiling, limit)
            share = f" shared by n={call.n} runs" if call.n > 1 else ""
            changed[f"thinkloop.budget.{limit}"] = (
                f"{asked} → {most}: the server's limit of {whole} {limit} per request{share} ({flag(limit)})"
            )
    try:
        return Budget.make(**limits)
    except ConfigurationError as exc:
        raise bad_request(str(exc), param="thinkloop.budget") from None
