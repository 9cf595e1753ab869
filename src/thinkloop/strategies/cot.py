"""Single-call strategies: :class:`Direct` (ask once) and :class:`ChainOfThought` (step by step)."""

from __future__ import annotations

import functools

from pydantic import Field

from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.strategies.base import ANSWER_FORMAT, Strategy, StrategyConfig
from thinkloop.types import Message


class DirectConfig(StrategyConfig):
    system_prompt: str = f"Answer the question. {ANSWER_FORMAT}"


class Direct(Strategy):
    """One call, no scaffolding. The baseline every other strategy must beat, and the way to run a native
    reasoning model (o1, o3-mini) whose thinking happens on the provider's side."""

    name = "direct"
    Config = DirectConfig
    takes_inner = False

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        samples = await self.draw(ctx, question, 1, parent=parent)
        if not samples.candidates:
            stop: StopReason = "budget" if samples.budget_hit else "error" if samples.errors else "completed"
            return Outcome(candidate=None, stop_reason=stop, notes=tuple(samples.errors))
        candidate = await ctx.verify(samples.candidates[0], strategy=self.name)
        ctx.offer(candidate)
        stop = "accepted" if candidate.accepted else "completed"
        return Outcome(candidate=candidate, stop_reason=stop, attempts=(candidate,))


class ChainOfThoughtConfig(StrategyConfig):
    max_rounds: int = Field(default=1, ge=1, description="Re-prompt until the verifier accepts, at most this often.")


class ChainOfThought(Strategy):
    """Step-by-step prompting with a fixed answer format.

    Choose it first: it is the cheapest strategy that reasons. With a verifier and ``max_rounds > 1`` it
    re-prompts, showing the verifier's feedback, until an answer is accepted.
    """

    name = "cot"
    Config = ChainOfThoughtConfig
    config: ChainOfThoughtConfig
    takes_inner = False

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        config = self.config
        extra: list[Message] = []
        best: Candidate | None = None
        rounds: list[Candidate] = []
        for round_number in range(config.max_rounds):
            request = self.request(question, extra=extra)
            called, failure = await ctx.capture(
                functools.partial(ctx.call, request, parents=[parent], strategy=self.name, data={"round": round_number})
            )
            if failure is not None:
                stop: StopReason = "budget" if failure.is_budget else "error"
                notes = () if failure.is_budget else (failure.message,)
                return Outcome(candidate=best, stop_reason=stop, notes=notes, attempts=tuple(rounds))
            node, completion = called
            candidate = await ctx.verify(ctx.candidate(node, completion.choices[0]), strategy=self.name)
            ctx.offer(candidate)
            rounds.append(candidate)
            if candidate.better_than(best):
                best = candidate
            if candidate.accepted or ctx.verifier is None:
                stop = "accepted" if candidate.accepted else "completed"
                return Outcome(candidate=candidate, stop_reason=stop, attempts=tuple(rounds))
            parent = candidate.node_id if candidate.node_id is not None else parent
            feedback = candidate.feedback or "That answer was not accepted."
            extra = [
                Message(role="assistant", content=candidate.text),
                Message(role="user", content=f"{feedback} Try again. {ANSWER_FORMAT}"),
            ]
        return Outcome(candidate=best, stop_reason="max_rounds", attempts=tuple(rounds))
