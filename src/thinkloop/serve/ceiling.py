"""The operator's ceiling on one request: tokens, calls, seconds and dollars, whatever the client asks.

A served model spends the operator's money, so the server, not the client, has the last word on what one
request may cost. :class:`Ceiling` holds the per-request limits (``thinkloop serve --max-request-*``); every
budget a client sends is clamped to them, the ``n`` runs of one request share them, and a strategy whose worst
case could not fit is refused before any call is made (:func:`worst_case_samples`), so a nested ``sc`` of
``sc`` at ``n=128`` is a 400 that names the limit rather than 16,384 upstream samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinkloop.strategies.base import Strategy

DEFAULT_TOKENS = 100_000
DEFAULT_CALLS = 256
DEFAULT_SECONDS = 300.0
DEFAULT_DOLLARS = 1.0


@dataclass(frozen=True)
class Ceiling:
    """Per-request limits; ``None`` lifts one (the operator's choice, never the client's)."""

    tokens: int | None = DEFAULT_TOKENS
    calls: int | None = DEFAULT_CALLS
    seconds: float | None = DEFAULT_SECONDS
    dollars: float | None = DEFAULT_DOLLARS
    """Applied only when the served model has a price (a local model costs nothing)."""

    def per_run(self, n: int) -> dict[str, Any]:
        """The limits of each of ``n`` runs of one request: they share the request's ceiling (time is not shared:
        the runs go side by side)."""
        limits: dict[str, Any] = {}
        if self.tokens is not None:
            limits["tokens"] = max(1, self.tokens // n)
        if self.calls is not None:
            limits["calls"] = max(1, self.calls // n)
        if self.seconds is not None:
            limits["seconds"] = self.seconds
        if self.dollars is not None:
            limits["dollars"] = self.dollars / n
        return limits


_FLAG = {
    "tokens": "--max-request-tokens",
    "calls": "--max-request-calls",
    "seconds": "--max-request-seconds",
    "dollars": "--max-request-dollars",
}


def flag(limit: str) -> str:
    """The ``serve`` flag that sets a limit (named in refusals, so a client knows whom to ask)."""
    return _FLAG[limit]


def worst_case_samples(strategy: Strategy) -> int | None:
    """The most model samples (choices of all calls) ``strategy`` can draw in one run with no verifier (as the
    server runs it); ``None`` when it is not known (a plugin's strategy: the budget still bounds it)."""
    config: Any = strategy.config
    inner = worst_case_samples(strategy.inner) if strategy.inner is not None else 1
    if inner is None:
        return None
    name = strategy.name
    if name in ("direct", "cot"):
        return 1  # cot re-prompts only for a verifier, and a served run has none
    if name == "sc":
        return config.n * inner
    if name == "bon":
        return config.n * inner + config.n  # a judge's verdict on each candidate
    if name == "critique":
        return (1 + config.max_rounds) * inner + config.max_rounds
    if name == "tree":
        mode, branching, depth = config.mode, config.branching, config.max_depth
        if mode in ("beam", "bfs"):
            expansions = depth * config.beam_width
        elif mode == "mcts":
            expansions = config.iterations
        else:  # dfs may walk every branch
            expansions = sum(branching**d for d in range(depth))
        return 2 * expansions * branching  # each proposed step is valued too
    if name == "auto":
        return config.probe + config.max_samples + 2 * config.bon_n + 2 * config.revise_rounds
    if name == "deepconf":  # a trace drawn in pieces is a call per piece
        pieces = -(-config.max_tokens // config.chunk_tokens) if config.chunk_tokens else 1
        return config.n * pieces
    if name in ("beam", "dvts", "particles"):  # n new steps per round, each judged when no PRM is set
        return 2 * config.n * config.max_steps
    if name == "cascade":
        return config.n + (inner if strategy.inner is not None else config.strong_n)
    if name == "usc":
        return config.n * inner + 1
    if name == "moa":
        return config.n * config.layers + 1
    if name == "effort":
        from thinkloop.strategies.effort import EFFORT_TABLE
        from thinkloop.strategies.registry import build_strategy

        plan = EFFORT_TABLE.get(config.level)
        return worst_case_samples(build_strategy(plan.strategy)) if plan is not None else None
    return None
