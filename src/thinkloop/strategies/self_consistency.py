"""Self-consistency: sample several reasoning paths and take the majority answer.

Choose it when answers can be compared (numbers, short expressions, labels) and the model is right more
often than it is consistently wrong in one way: the vote then beats a single sample, at ``n`` times the cost.
Adaptive mode (Adaptive-Consistency) stops as soon as the leader cannot be overtaken or is confidently ahead,
which saves most of the samples on easy questions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import anyio
from pydantic import Field

from thinkloop.exceptions import BackendError
from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.runtime.trace import redact
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.strategies.vote import (
    Equivalence,
    VoteGroup,
    beta_confidence,
    exact_equivalent,
    leader_is_safe,
    majority_vote,
)
from thinkloop.types import ChatRequest

_EARLIEST_STOP = 4
"""Unanimous samples needed before the default confidence rule (0.95) can stop: 1 - 2**-5 > 0.95."""


class SelfConsistencyConfig(StrategyConfig):
    n: int = Field(default=8, ge=1, le=128, description="Samples to draw (the most, in adaptive mode).")
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)
    adaptive: bool = False
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="Adaptive: stop when P(leader) > this.")
    min_samples: int = Field(default=2, ge=1, description="Adaptive: never stop before this many answers.")
    parallel: int = Field(
        default=2, ge=1, description="Adaptive: samples in flight at once (per round where n is honoured)."
    )
    weighting: Literal["none", "verifier", "logprob"] = "none"
    equivalence: Literal["math", "exact"] = "math"


class SelfConsistency(Strategy):
    """Majority vote over ``n`` sampled answers (Wang et al., 2022)."""

    name = "sc"
    Config = SelfConsistencyConfig
    config: SelfConsistencyConfig

    def request(self, question: str, **sampling: Any) -> ChatRequest:
        """The strategy's prompt; a vote weighted by log-probability asks for them (else every weight is 0)."""
        if self.config.weighting == "logprob":
            sampling.setdefault("logprobs", True)
        return super().request(question, **sampling)

    def _equivalence(self) -> Equivalence | None:
        return exact_equivalent if self.config.equivalence == "exact" else None

    @staticmethod
    def _deadline(ctx: RunContext) -> float | None:
        """The run's time budget as a ``time.monotonic`` instant: the vote's slow comparisons stop there."""
        left = ctx.ledger.seconds_left()
        return None if math.isinf(left) else time.monotonic() + left

    def _weight(self, candidate: Candidate) -> float:
        mode = self.config.weighting
        if mode == "verifier":
            return candidate.score if candidate.score is not None else 0.0
        if mode == "logprob":
            return math.exp(candidate.mean_logprob) if candidate.mean_logprob is not None else 0.0
        return 1.0

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        config = self.config
        if config.adaptive and config.n > 1:
            batched = self.inner is None and ctx.backend.capabilities.honours_n and config.weighting != "verifier"
            adaptive = self._adaptive_rounds if batched else self._adaptive
            samples, converged = await adaptive(ctx, question, parent)
        else:
            samples = Samples(requested=config.n)
            ctx.set_provisional(lambda: self._pick(samples, self._deadline(ctx)))
            await self.draw(ctx, question, config.n, parent=parent, into=samples)
            converged = False
            if config.weighting == "verifier" and ctx.verifier is not None:
                samples.candidates = await self._verify_all(ctx, samples)
        return self._decide(ctx, samples, parent, converged)

    def _pick(self, samples: Samples, deadline: float | None) -> Candidate | None:
        """The vote's winner over the samples so far, without recording anything (a provisional answer)."""
        weight = None if self.config.weighting == "none" else self._weight
        tally = majority_vote(samples.candidates, weight=weight, equivalent=self._equivalence(), deadline=deadline)
        winner = tally.winner
        if winner is None:
            return None
        return winner.best_member().model_copy(update={"answer": winner.representative})

    async def _checked(self, ctx: RunContext, candidate: Candidate) -> tuple[Candidate, Failure | None]:
        """Verify for weighting; a verifier that runs out of budget or fails leaves the sample unverified."""
        verified, failure = await ctx.capture(lambda: ctx.verify(candidate, strategy=self.name))
        return (candidate if verified is None else verified), failure

    async def _verify_all(self, ctx: RunContext, samples: Samples) -> list[Candidate]:
        verified = list(samples.candidates)

        async def one(index: int) -> None:
            verified[index], failure = await self._checked(ctx, verified[index])
            if failure is not None and failure.is_budget:
                samples.budget_hit = True
            elif failure is not None:
                samples.errors.append(failure.message)

        async with anyio.create_task_group() as group:
            for index in range(len(verified)):
                group.start_soon(one, index)
        return verified

    async def _one(self, ctx: RunContext, question: str, parent: int) -> tuple[Candidate | None, Failure | None]:
        """One sample: a model call, or a whole run of the inner strategy. Returns (candidate, failure)."""
        if self.inner is not None:
            try:
                outcome = await self.solve_inner(ctx, question, parent=parent)
            except BackendError as exc:
                return None, Failure.of(exc, redact(str(exc)))
            if self.inner_stopped_by_budget(ctx, outcome):
                return outcome.candidate, Failure(kind="budget", message="the inner strategy spent its budget")
            return outcome.candidate, None
        request = self.request(question)
        called, failure = await ctx.capture(lambda: ctx.call(request, parents=[parent], strategy=self.name))
        if failure is not None:
            return None, failure
        node, completion = called
        candidate = ctx.candidate(node, completion.choices[0])
        if self.config.weighting == "verifier" and ctx.verifier is not None:
            return await self._checked(ctx, candidate)
        return candidate, None

    def _decided(self, ctx: RunContext, samples: Samples, remaining: int) -> bool:
        """The adaptive stopping rule: the leader cannot be overtaken, or is confidently ahead."""
        if len(samples.candidates) < self.config.min_samples:
            return False
        tally = majority_vote(samples.candidates, equivalent=self._equivalence(), deadline=self._deadline(ctx))
        return leader_is_safe(tally, remaining) or beta_confidence(tally) > self.config.confidence

    async def _adaptive_rounds(self, ctx: RunContext, question: str, parent: int) -> tuple[Samples, bool]:
        """Adaptive sampling on a backend that honours ``n``: a first round as large as the earliest
        possible stop, then ``parallel`` more per round, each round one request sharing its prompt."""
        config = self.config
        samples = Samples(requested=config.n)
        ctx.set_provisional(lambda: self._pick(samples, self._deadline(ctx)))
        request = self.request(question)
        drawn = 0
        size = min(config.n, max(config.min_samples, config.parallel, _EARLIEST_STOP))
        while drawn < config.n:
            size = min(size, config.n - drawn)
            batch = await ctx.sample(request, size, parents=[parent], strategy=self.name)
            drawn += size
            samples.candidates.extend(batch.candidates)
            samples.errors.extend(batch.errors)
            samples.notes.extend(batch.notes)
            for candidate in batch.candidates:
                ctx.offer(candidate)
            if batch.budget_hit:
                samples.budget_hit = True
                return samples, False
            if self._decided(ctx, samples, config.n - drawn):
                return samples, drawn < config.n
            size = config.parallel
        return samples, False

    async def _adaptive(self, ctx: RunContext, question: str, parent: int) -> tuple[Samples, bool]:
        """Keep ``parallel`` samples in flight; stop and cancel the rest once the vote is decided."""
        config = self.config
        samples = Samples(requested=config.n)
        ctx.set_provisional(lambda: self._pick(samples, self._deadline(ctx)))
        converged = False
        slots = anyio.CapacityLimiter(config.parallel)
        finished = 0

        async def sample(group: anyio.abc.TaskGroup) -> None:
            nonlocal converged, finished
            async with slots:
                if samples.budget_hit:  # the budget is spent: launch nothing more, keep what is in flight
                    return
                candidate, failure = await self._one(ctx, question, parent)
            finished += 1
            if group.cancel_scope.cancel_called:
                # Decided already: a reply that landed in the same instant is billed and in the graph, but
                # not a vote, so the tally is the one the decision saw (and a replay gets the same).
                if candidate is not None and candidate.node_id is not None:
                    node = ctx.graph.node(candidate.node_id)
                    ctx.mark(node, "pruned", data={**(node.data or {}), "pruned": "arrived after the vote was decided"})
                return
            if failure is not None and failure.is_budget:
                samples.budget_hit = True
            elif failure is not None:
                samples.errors.append(failure.message)
            if candidate is None:
                return
            samples.candidates.append(candidate)
            ctx.offer(candidate)
            remaining = config.n - finished
            if self._decided(ctx, samples, remaining):
                converged = remaining > 0
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for _ in range(config.n):
                group.start_soon(sample, group)
        return samples, converged

    def _decide(self, ctx: RunContext, samples: Samples, parent: int, converged: bool) -> Outcome:
        config = self.config
        weight = None if config.weighting == "none" else self._weight
        tally = majority_vote(
            samples.candidates, weight=weight, equivalent=self._equivalence(), deadline=self._deadline(ctx)
        )
        notes = list(samples.notes)
        received = samples.received
        if received < config.n and not converged:
            notes.append(f"voted over {received} of {config.n} samples")
        if tally.unresolved:
            notes.append(
                f"the time budget left {tally.unresolved} answer comparisons undone; those answers were counted apart"
            )
        notes.extend(samples.errors)
        winner = tally.winner
        answers = sorted(c.answer for c in samples.candidates if c.answer is not None)
        data = {
            "votes": tally.counts(),
            "weights": tally.weights(),
            "samples": received,
            "requested": config.n,
            "unanswered": tally.unanswered,
            # cut off by max_tokens (an empty one is hidden reasoning eating the limit: a budget outcome)
            "truncated": sum(c.finish_reason == "length" for c in samples.candidates),
            "answers": answers,
        }
        return vote_outcome(ctx, self.name, winner, samples, parent=parent, converged=converged, data=data, notes=notes)


def vote_outcome(
    ctx: RunContext,
    strategy: str,
    winner: VoteGroup | None,
    samples: Samples,
    *,
    parent: int,
    converged: bool,
    data: dict[str, Any],
    notes: Sequence[str],
    detail: str | None = None,
) -> Outcome:
    """Record the vote over ``samples`` (a ``vote`` node under them) and say how it ended.

    The chosen sample comes first among the node's parents, so the graph's path to the answer runs through it.
    """
    shown = winner.best_member() if winner is not None else None
    chosen = shown.model_copy(update={"answer": winner.representative}) if shown and winner else None
    ordered = sorted(samples.candidates, key=lambda c: c is not shown)
    parents = [c.node_id for c in ordered if c.node_id is not None] or [parent]
    node = ctx.record(
        "vote",
        parents,
        strategy=strategy,
        answer=chosen.answer if chosen else None,
        text=chosen.text if chosen else None,
        data=data,
    )
    if chosen is not None:
        chosen = chosen.model_copy(update={"node_id": node.id, "data": data})
        ctx.offer(chosen)
    drawn = samples.received
    majority = winner is not None and winner.votes * 2 > drawn
    split = f"{winner.representative} has {winner.votes} of {drawn} samples" if winner is not None else ""
    stop: StopReason
    if samples.budget_hit:
        stop = "budget"
    elif converged and majority:
        stop = "converged"
        detail = detail or f"the vote was decided early: {split}"
    elif converged:  # the stopping rule fired on the top two answers, but most samples went elsewhere
        stop = "completed"
        detail = f"votes spread: the stopping rule ended the draw with no majority ({split})"
    elif drawn == 0 and samples.errors:
        stop = "error"
    else:
        stop = "completed"
        if winner is None:
            detail = detail or f"none of {drawn} samples gave an answer"
        elif not majority:
            detail = detail or f"votes spread: every sample drawn, no majority ({split})"
        else:
            detail = detail or f"every sample drawn: {split}"
    return Outcome(
        candidate=chosen,
        stop_reason=stop,
        notes=tuple(notes),
        attempts=tuple(samples.candidates),
        votes=data["votes"],
        data=data,
        detail=detail,
    )
