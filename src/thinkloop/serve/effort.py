"""``reasoning_effort`` as thinkloop reads it: one table from effort to a strategy and a token budget.

OpenAI's reasoning models take ``reasoning_effort`` (``minimal``/``low``/``medium``/``high``, and ``none`` on
newer ones) and think harder, hidden and billed. thinkloop turns the same knob into a visible strategy under a
hard budget:

=========  =====================  ================
effort     strategy               token budget
=========  =====================  ================
none       ``direct``             2,000
minimal    ``cot``                4,000
low        ``sc-adaptive:n=4``    12,000
medium     ``sc-adaptive:n=8``    24,000
high       ``sc:n=16``            48,000
=========  =====================  ================

When the upstream model is itself a reasoning model that takes the parameter (o1, o3, o4-mini, gpt-5 ...;
not o1-mini or o1-preview), the effort is passed to it unchanged and the strategy is ``direct``: it already
thinks, and a second layer of sampling on top would multiply a hidden bill.

The table is data with no server in it, so a library-level ``effort=`` knob can move it to a lower layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EFFORTS = ("none", "minimal", "low", "medium", "high")


@dataclass(frozen=True)
class EffortPlan:
    strategy: str
    """A strategy spec for :func:`thinkloop.strategies.registry.build_strategy`."""
    tokens: int
    """The run's token budget (prompt plus completion, every call)."""


EFFORT_TABLE: dict[str, EffortPlan] = {
    "none": EffortPlan("direct", 2_000),
    "minimal": EffortPlan("cot", 4_000),
    "low": EffortPlan("sc-adaptive:n=4", 12_000),
    "medium": EffortPlan("sc-adaptive:n=8", 24_000),
    "high": EffortPlan("sc:n=16", 48_000),
}

# Models that take reasoning_effort themselves: the o-series from o1 on (not o1-mini / o1-preview) and gpt-5.
_TAKES_EFFORT = re.compile(r"^(?:openai/)?(?:o[1-9](?:$|[-.])|gpt-5(?:$|[-.]))")
_NO_EFFORT = re.compile(r"^(?:openai/)?o1-(?:mini|preview)(?:$|-)")


def model_takes_effort(model: str) -> bool:
    """Whether an upstream model accepts ``reasoning_effort`` itself (so it is passed through unchanged)."""
    return bool(_TAKES_EFFORT.match(model)) and not _NO_EFFORT.match(model)


def plan_for(effort: str) -> EffortPlan:
    """The strategy and budget for an effort; ``KeyError`` for an effort not in :data:`EFFORTS`."""
    return EFFORT_TABLE[effort]
