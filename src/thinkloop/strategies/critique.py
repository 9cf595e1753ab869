"""Critique and revise (in the style of Self-Refine): answer, critique, revise, until accepted.

Choose it when errors are local and checkable (a wrong step, a format slip) and a verifier or the model can
point at them; each round costs two or three calls. Every version is kept in the graph, and the best-scored
version is returned, not blindly the last one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.runtime.trace import redact
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.strategies.cot import HISTORY_OPTION
from thinkloop.strategies.critique_prompts import CRITIC_SYSTEM, NO_ISSUES, Critic, revision_turns
from thinkloop.types import Message

__all__ = ["CRITIC_SYSTEM", "NO_ISSUES", "CritiqueRevise", "CritiqueReviseConfig"]


class CritiqueReviseConfig(StrategyConfig):
    max_rounds: int = Field(default=3, ge=1, le=20, description="Revisions after the first answer, at most.")
    critic: Literal["auto", "model", "verifier"] = "auto"
    """auto: the verifier's feedback when the run has a verifier, else the model critiques itself."""
    critique_max_tokens: int = Field(default=192, ge=1)
    history: Literal["all", "last"] = HISTORY_OPTION


class CritiqueRevise(Strategy):
    """Answer, critique, revise; stop at the first accepted version or when the critic finds nothing."""

    name = "critique"
    Config = CritiqueReviseConfig
    config: CritiqueReviseConfig

    async def _first(self, ctx: RunContext, question: str, parent: int) -> Candidate | None:
        if self.inner is not None:
            return (await self.solve_inner(ctx, question, parent=parent)).candidate
        node, completion = await ctx.call(self.request(question), parents=[parent], strategy=self.name)
        return ctx.candidate(node, completion.choices[0])

    async def _critique(self, ctx: RunContext, question: str, candidate: Candidate) -> str:
        _, choice = await ctx.side_call(
            Critic.system,
            Critic.user(question, candidate.text),
            parents=[candidate.node_id] if candidate.node_id is not None else [],
            kind="critique",
            strategy=self.name,
            max_tokens=self.config.critique_max_tokens,
        )
        return choice.text.strip()

    async def _revise(
        self,
        ctx: RunContext,
        question: str,
        candidate: Candidate,
        critique: str,
        turns: list[Message],
    ) -> Candidate:
        """A corrected solution from the latest attempt and its critique (``history="last"``, the default), or
        with every earlier attempt and critique kept before them (``history="all"``: the prompt extends the
        previous one, which prefix caches reuse)."""
        if self.config.history == "last":
            turns.clear()
        turns.extend(revision_turns(candidate.text, critique))
        request = self.request(question, extra=turns)
        parents = [candidate.node_id] if candidate.node_id is not None else []
        node, completion = await ctx.call(request, parents=parents, kind="revise", strategy=self.name)
        return ctx.candidate(node, completion.choices[0])

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        config = self.config
        critic = config.critic
        if critic == "auto":
            critic = "verifier" if ctx.verifier is not None else "model"
        versions: list[Candidate] = []
        turns: list[Message] = []

        def best() -> Candidate | None:
            ranked = sorted(enumerate(versions), key=lambda iv: (iv[1].rank(), iv[0]))
            return ranked[-1][1] if ranked else None

        def outcome(stop: StopReason, note: str | None = None) -> Outcome:
            chosen = best()
            data = {"versions": len(versions), "scores": [v.score for v in versions]}
            if chosen is not None and chosen.node_id is not None:
                node = ctx.record(
                    "select",
                    [chosen.node_id],
                    strategy=self.name,
                    answer=chosen.answer,
                    score=chosen.score,
                    text=chosen.text,
                    data=data,
                )
                chosen = chosen.model_copy(update={"node_id": node.id})
                ctx.offer(chosen)
            return Outcome(
                candidate=chosen,
                stop_reason=stop,
                notes=(note,) if note else (),
                attempts=tuple(versions),
                data=data,
            )

        try:
            candidate = await self._first(ctx, question, parent)
            if candidate is None:
                return outcome("completed", "the first answer produced no candidate")
            for round_number in range(config.max_rounds + 1):
                candidate = await ctx.verify(candidate, strategy=self.name)
                ctx.offer(candidate)
                versions.append(candidate)
                if candidate.accepted:
                    return outcome("accepted")
                if round_number == config.max_rounds:
                    break
                if critic == "verifier":
                    critique = candidate.feedback or "The answer was not accepted; check every step."
                else:
                    critique = await self._critique(ctx, question, candidate)
                    if Critic.all_clear(critique):
                        return outcome("converged")
                candidate = await self._revise(ctx, question, candidate, critique, turns)
        except BudgetExhausted:
            return outcome("budget")
        except BackendError as exc:
            if not versions:
                raise
            return outcome("error", redact(str(exc)))
        return outcome("max_rounds")
