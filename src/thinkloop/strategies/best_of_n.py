"""Best-of-n: draw n candidates, score each, keep the best; stop as soon as one is accepted.

Choose it when you can score an answer better than you can vote on it: a verifier, a reward function or an
LLM judge. It is only as good as its scorer; with a weak judge, self-consistency is often the better buy.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
from pydantic import Field

from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.runtime.trace import redact
from thinkloop.strategies.base import Strategy, StrategyConfig

Reward = Callable[[str, Candidate], float | Awaitable[float]]


class BestOfNConfig(StrategyConfig):
    n: int = Field(default=8, ge=1, le=128)
    temperature: float | None = Field(default=0.8, ge=0.0, le=2.0)
    scorer: Literal["auto", "verifier", "judge", "reward"] = "auto"
    """auto: the reward function if given, else the run's verifier, else an LLM judge on the same model."""
    judge_max_tokens: int = Field(default=256, ge=1, description="Room for the judge's check and verdict.")


class BestOfN(Strategy):
    """Pick the top-scored of ``n`` candidates (rejection sampling with a scorer)."""

    name = "bon"
    Config = BestOfNConfig
    config: BestOfNConfig

    def __init__(self, *, inner: Strategy | None = None, reward: Reward | None = None, **options: Any) -> None:
        super().__init__(inner=inner, **options)
        self.reward = reward
        if self.config.scorer == "reward" and reward is None:
            from thinkloop.exceptions import ConfigurationError

            raise ConfigurationError("BestOfN: scorer='reward' needs reward=<function>")

    def _scorer(self, ctx: RunContext) -> str:
        scorer = self.config.scorer
        if scorer != "auto":
            return scorer
        if self.reward is not None:
            return "reward"
        return "verifier" if ctx.verifier is not None else "judge"

    async def _score(self, ctx: RunContext, candidate: Candidate, scorer: str) -> Candidate:
        if scorer == "reward" and self.reward is not None:  # (__init__ refuses scorer=reward without one)
            value = self.reward(ctx.question, candidate)
            if inspect.isawaitable(value):
                value = await value
            score = min(1.0, max(0.0, float(value)))
            parents = [candidate.node_id] if candidate.node_id is not None else []
            ctx.record("evaluate", parents, strategy=self.name, score=score, answer=candidate.answer)
            scored = candidate.model_copy(update={"score": score})
            ctx.offer(scored)
            return scored
        if scorer == "judge":
            from thinkloop.verifiers.judge import LLMJudge

            judge = LLMJudge(max_tokens=self.config.judge_max_tokens)
            return await ctx.child(verifier=judge).verify(candidate, strategy=self.name)
        return await ctx.verify(candidate, strategy=self.name)

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        config = self.config
        scorer = self._scorer(ctx)
        scored: list[Candidate] = []
        failures: list[str] = []
        budget_hit = False
        accepted = False

        async def score_one(candidate: Candidate, group: anyio.abc.TaskGroup) -> None:
            nonlocal budget_hit, accepted
            try:
                result = await self._score(ctx, candidate, scorer)
            except BudgetExhausted:
                budget_hit = True
                ctx.offer(candidate)
                scored.append(candidate)
                return
            except BackendError as exc:
                failures.append(redact(str(exc)))
                scored.append(candidate)
                return
            if accepted:
                return  # one was accepted in the same instant: the first acceptance decides (and replays)
            scored.append(result)
            if result.accepted:
                accepted = True
                group.cancel_scope.cancel()

        async def sample_and_score(group: anyio.abc.TaskGroup) -> None:
            nonlocal budget_hit
            if self.inner is not None:
                try:
                    outcome = await self.solve_inner(ctx, question, parent=parent)
                except BackendError as exc:
                    failures.append(redact(str(exc)))
                    return
                budget_hit = budget_hit or self.inner_stopped_by_budget(ctx, outcome)
                if outcome.candidate is not None:
                    await score_one(outcome.candidate, group)
                return
            called, failure = await ctx.capture(
                lambda: ctx.call(self.request(question), parents=[parent], strategy=self.name)
            )
            if failure is not None:
                if failure.is_budget:
                    budget_hit = True
                else:
                    failures.append(failure.message)
                return
            node, completion = called
            await score_one(ctx.candidate(node, completion.choices[0]), group)

        async with anyio.create_task_group() as group:
            if self.inner is None and ctx.backend.capabilities.honours_n and config.n > 1:
                samples = await ctx.sample(self.request(question), config.n, parents=[parent], strategy=self.name)
                budget_hit = samples.budget_hit
                failures.extend(samples.errors)
                for candidate in samples.candidates:
                    group.start_soon(score_one, candidate, group)
            else:
                for _ in range(config.n):
                    group.start_soon(sample_and_score, group)

        best = None
        for candidate in sorted(scored, key=lambda c: (c.text, c.node_id or 0)):
            if candidate.better_than(best):
                best = candidate
        if best is not None:
            node = ctx.record(
                "select",
                [best.node_id] if best.node_id is not None else [parent],
                strategy=self.name,
                answer=best.answer,
                score=best.score,
                text=best.text,
                data={
                    "scorer": scorer,
                    "candidates": len(scored),
                    "scores": sorted((c.score for c in scored if c.score is not None), reverse=True),
                },
            )
            best = best.model_copy(update={"node_id": node.id})
            ctx.offer(best)
        stop: StopReason
        if accepted:
            stop = "accepted"
        elif budget_hit:
            stop = "budget"
        elif best is None and failures:
            stop = "error"
        else:
            stop = "completed"
        notes = tuple(failures)
        if len(scored) < config.n and not accepted:
            notes += (f"scored {len(scored)} of {config.n} candidates",)
        detail = None
        if stop == "completed" and scorer == "verifier":
            detail = f"scored {len(scored)} of {config.n} candidates with the check; none passed"
        elif stop == "completed":
            detail = f"scored {len(scored)} of {config.n} candidates ({scorer}); kept the best-scored one"
        return Outcome(candidate=best, stop_reason=stop, notes=notes, attempts=tuple(scored), detail=detail)
