"""One knob for how hard to think: ``effort``, from ``none`` to ``high`` and ``auto``.

OpenAI's reasoning models take ``reasoning_effort`` and think harder, hidden and billed. thinkloop turns the
same knob into a visible strategy under a hard token budget, by this one table. Adaptive self-consistency
is at every level from ``low`` up because it pays: on a simulated mix of easy and hard questions
(``benchmarks/effort_curve.py``, figures in the README) it stops after a few samples where they agree and
spends the cap where they do not, so adaptive with a cap of 32 is more accurate than fixed SC@16 for fewer
tokens.

=========  ========================  ==============
effort     strategy                  token budget
=========  ========================  ==============
none       ``direct``                2,000
minimal    ``cot``                   4,000
low        ``sc-adaptive:n=8``       12,000
medium     ``sc-adaptive:n=16``      24,000
high       ``sc-adaptive:n=32``      48,000
auto       ``auto``                  64,000
=========  ========================  ==============

``auto`` (:mod:`thinkloop.strategies.auto`) spends per question: a few samples first, more only where they
disagree, best-of-n and revision where a verifier rejects.

When the backend is itself a reasoning model that takes the parameter (o1, o3, o4-mini, gpt-5 ...; not
o1-mini or o1-preview), a level is passed to it unchanged (``extra_body={"reasoning_effort": level}``) and
the strategy is ``direct``: it already thinks, and a second layer of sampling on top would multiply a
hidden bill. ``auto`` is thinkloop's own and always runs as a strategy.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import Field

from thinkloop.backends.base import Backend, WrappedBackend
from thinkloop.backends.profiles import model_takes_effort
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.budget import Budget
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.engine import Engine
from thinkloop.runtime.result import Outcome, Result
from thinkloop.runtime.trace import Sink
from thinkloop.runtime.verdict import Verifier
from thinkloop.strategies.base import Conversation, Strategy, StrategyConfig

EffortLevel = Literal["none", "minimal", "low", "medium", "high", "auto"]
"""An effort level, for type checkers (:func:`think` takes one; a misspelt level is an error before the run)."""

EFFORTS: tuple[EffortLevel, ...] = ("none", "minimal", "low", "medium", "high", "auto")
"""Every level, cheapest first (``auto`` spends per question)."""

PASSED_THROUGH = ("none", "minimal", "low", "medium", "high")
"""The levels a reasoning model takes itself."""


@dataclass(frozen=True)
class EffortPlan:
    strategy: str
    """A strategy spec for :func:`thinkloop.strategies.registry.build_strategy`."""
    tokens: int
    """The run's token budget (prompt plus completion, every call)."""


EFFORT_TABLE: dict[str, EffortPlan] = {
    "none": EffortPlan("direct", 2_000),
    "minimal": EffortPlan("cot", 4_000),
    "low": EffortPlan("sc-adaptive:n=8", 12_000),
    "medium": EffortPlan("sc-adaptive:n=16", 24_000),
    "high": EffortPlan("sc-adaptive:n=32", 48_000),
    "auto": EffortPlan("auto", 64_000),
}


def check_effort(effort: object) -> EffortLevel:
    """``effort`` if it is a level, else one :class:`ConfigurationError` naming the levels."""
    for level in EFFORTS:
        if effort == level:
            return level
    raise ConfigurationError(f"unknown effort {effort!r}; the levels are {', '.join(EFFORTS)}")


def plan_for(effort: str) -> EffortPlan:
    """The strategy and budget for an effort level."""
    return EFFORT_TABLE[check_effort(effort)]


def takes_reasoning_effort(backend: Backend) -> bool:
    """Whether ``backend`` is a reasoning model reached through an OpenAI-compatible API that takes
    ``reasoning_effort``. A backend can say so itself with a boolean ``takes_reasoning_effort`` attribute
    (an open reasoning model behind vLLM, say); otherwise the model's name decides."""
    flag = getattr(backend, "takes_reasoning_effort", None)
    if isinstance(flag, bool):
        return flag
    while isinstance(backend, WrappedBackend):
        backend = backend.inner
    openai = sys.modules.get("thinkloop.backends.openai")  # not loaded: no backend can be one of its
    return openai is not None and isinstance(backend, openai.OpenAIBackend) and model_takes_effort(backend.name)


class EffortConfig(StrategyConfig):
    level: str = Field(default="medium", description="none, minimal, low, medium, high or auto")


class Effort(Strategy):
    """Think as hard as the level says: the strategy and token budget of the effort table.

    ``effort:high`` on the command line, ``Effort(level="high")`` or :func:`think` from Python. Options
    given to it (``max_tokens``, ``temperature``, ``system_prompt``) reach the strategy the level runs.
    """

    name = "effort"
    Config = EffortConfig
    config: EffortConfig
    takes_inner = False

    def __init__(self, **options: Any) -> None:
        check_effort(options.get("level", "medium"))
        super().__init__(**options)

    def _overrides(self) -> dict[str, Any]:
        return {k: getattr(self.config, k) for k in self.config.model_fields_set if k != "level"}

    def plan(self, backend: Backend) -> tuple[Strategy, Budget | None, bool]:
        """What the level runs on ``backend``: the strategy, its budget slice, and whether the level is
        passed through to the model itself."""
        from thinkloop.strategies.registry import build_strategy

        level = self.config.level
        if level in PASSED_THROUGH and takes_reasoning_effort(backend):
            return build_strategy("direct", **self._overrides()), None, True
        plan = plan_for(level)
        return build_strategy(plan.strategy, **self._overrides()), Budget(tokens=plan.tokens), False

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        inner, budget, passed = self.plan(ctx.backend)
        if passed:
            conversation = Conversation.of(question)
            question = conversation.with_extra_body(
                dict(conversation.extra_body or {}) | {"reasoning_effort": self.config.level}
            )
        outcome = await inner.solve(ctx.child(budget) if budget is not None else ctx, question, parent=parent)
        effort = {
            "level": self.config.level,
            "strategy": inner.label,
            "tokens": budget.tokens if budget else None,
            "passed_through": passed,
        }
        return outcome.model_copy(update={"data": {**(outcome.data or {}), "effort": effort}})


def effort_strategy(effort: str = "medium", **options: Any) -> Effort:
    """The strategy for an effort level (``options``: ``max_tokens``, ``temperature``, ``system_prompt``)."""
    strategy = Effort(level=check_effort(effort), **options)
    strategy.spec = f"effort:{effort}"
    return strategy


async def think(
    question: str,
    *,
    backend: Backend | None = None,
    effort: EffortLevel = "medium",
    engine: Engine | None = None,
    budget: Budget | None = None,
    verifier: Verifier | None = None,
    trace_path: str | Path | None = None,
    sinks: Iterable[Sink] = (),
    **options: Any,
) -> Result:
    """Answer ``question`` as hard as ``effort`` says (see the table above); the usual :class:`Result`.

    ``budget`` caps the run on top of the level's own token budget; ``verifier`` lets ``auto`` check
    answers; ``options`` (``max_tokens``, ``temperature``) reach the strategy the level runs.
    """
    strategy = effort_strategy(effort, **options)
    return await strategy.run(
        question, backend=backend, engine=engine, budget=budget, verifier=verifier, trace_path=trace_path, sinks=sinks
    )


def think_sync(
    question: str,
    *,
    backend: Backend | None = None,
    effort: EffortLevel = "medium",
    engine: Engine | None = None,
    budget: Budget | None = None,
    verifier: Verifier | None = None,
    trace_path: str | Path | None = None,
    sinks: Iterable[Sink] = (),
    **options: Any,
) -> Result:
    """:func:`think` for code that is not async (the same parameters)."""
    return anyio.run(
        functools.partial(
            think,
            question,
            backend=backend,
            effort=effort,
            engine=engine,
            budget=budget,
            verifier=verifier,
            trace_path=trace_path,
            sinks=sinks,
            **options,
        )
    )
