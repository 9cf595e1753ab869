"""``auto``: as much compute as each question needs, decided from what the model says.

Spending the same on every question is wasteful: on an easy one a few samples agree at once, on a hard one
they scatter and more samples (or a verifier's search) pay (Snell et al., 2024). ``auto`` starts cheap and
escalates only on evidence:

* **Without a verifier** it draws ``probe`` samples. If they all agree it stops. Otherwise it multiplies the
  samples drawn so far by ``growth`` (through :meth:`Strategy.draw`, so an ``inner`` strategy can stand where
  each sample stands) until the vote is decided by the Beta rule of adaptive self-consistency, the leader
  cannot be overtaken, or ``max_samples`` is reached.
* **With a verifier** (the run's, or an LLM judge with ``scorer=judge``) it asks for one answer and checks
  it. If the verifier rejects it, best-of-``bon_n`` with the verifier follows; if none is accepted,
  critique-and-revise from the best answer so far on the verifier's feedback; then tree search where
  ``tree=true``.

The budget bounds every step (a stage that cannot fit draws what fits, and the run stops when none fits).
Every decision is a ``decide`` node in the graph with its reason (``data["decision"]`` is ``stop`` or
``escalate``, ``data["reason"]`` says why), so the trace and ``thinkloop view`` show why a question got
more compute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.strategies.self_consistency import vote_outcome
from thinkloop.strategies.vote import VoteResult, beta_confidence, exact_equivalent, leader_is_safe, majority_vote


class AutoConfig(StrategyConfig):
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)
    probe: int = Field(default=3, ge=1, le=64, description="Samples drawn first; all agreeing ends the run.")
    # 64, not 32: on the simulated mix (benchmarks/effort_sweep.py) a hard question keeps gaining from samples up
    # to 64, and easy ones stop after a few whatever the cap, so the larger cap is what lets auto match the best
    # fixed self-consistency (SC@40) at half its tokens; the run's token budget still bounds it.
    max_samples: int = Field(default=64, ge=1, le=128, description="The most samples the vote may grow to.")
    growth: float = Field(default=2.0, ge=1.1, le=4.0, description="Each escalation multiplies the samples by this.")
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Stop once P(the leader is the majority answer) exceeds this."
    )
    scorer: Literal["auto", "votes", "verifier", "judge"] = Field(
        default="auto", description="auto: the run's verifier if any, else agreement between samples (votes)."
    )
    bon_n: int = Field(default=4, ge=1, le=64, description="Verifier: candidates of best-of-n after a rejection.")
    revise_rounds: int = Field(default=2, ge=0, le=20, description="Verifier: critique-revise rounds after that.")
    tree: bool = Field(default=False, description="Verifier: end with tree search valued by the verifier.")
    judge_max_tokens: int = Field(default=256, ge=1, description="scorer=judge: room for the judge's verdict.")
    equivalence: Literal["math", "exact"] = "math"


class _Given(Strategy):
    """A strategy whose one answer is already known: lets critique-revise start from the best answer so far."""

    name = "given"
    takes_inner = False

    def __init__(self, candidate: Candidate) -> None:
        super().__init__()
        self.candidate = candidate

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        return Outcome(candidate=self.candidate, stop_reason="completed")


class Auto(Strategy):
    """Start cheap, measure how hard the question is, and escalate only where it pays."""

    name = "auto"
    Config = AutoConfig
    config: AutoConfig

    def _decide(self, ctx: RunContext, parents: Sequence[int], decision: str, reason: str, **data: Any) -> int:
        node = ctx.record(
            "decide", parents, strategy=self.name, text=reason, data={"decision": decision, "reason": reason, **data}
        )
        return node.id

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        scorer = self.config.scorer
        if scorer == "auto":
            scorer = "verifier" if ctx.verifier is not None else "votes"
        if scorer == "judge":
            from thinkloop.verifiers.judge import LLMJudge

            ctx = ctx.child(verifier=LLMJudge(max_tokens=self.config.judge_max_tokens))
        elif scorer == "verifier" and ctx.verifier is None:
            from thinkloop.exceptions import ConfigurationError

            raise ConfigurationError("auto: scorer='verifier' needs a run verifier (run(..., verifier=...))")
        if scorer == "votes":
            return await self._by_votes(ctx, question, parent)
        return await self._by_verifier(ctx, question, parent)

    # --- agreement between samples ----------------------------------------------------------------------
    def _tally(self, ctx: RunContext, samples: Samples) -> VoteResult:
        left = ctx.ledger.seconds_left()
        deadline = None if math.isinf(left) else time.monotonic() + left
        equivalent = exact_equivalent if self.config.equivalence == "exact" else None
        return majority_vote(samples.candidates, equivalent=equivalent, deadline=deadline)

    def _pick(self, ctx: RunContext, samples: Samples) -> Candidate | None:
        winner = self._tally(ctx, samples).winner
        return None if winner is None else winner.best_member().model_copy(update={"answer": winner.representative})

    def _step(self, drawn: int, remaining: int) -> int:
        """How many more samples an escalation draws: ``growth`` times what was drawn, within what is left."""
        return max(1, min(remaining, math.ceil(drawn * (self.config.growth - 1.0))))

    def _verdict(self, tally: VoteResult, drawn: int, remaining: int) -> tuple[bool, str]:
        """Whether to stop, and why, from the vote so far."""
        config = self.config
        split = ", ".join(f"{g.representative} ×{g.votes}" for g in tally.groups[:4]) or "no answers"
        if not tally.groups:
            return True, f"none of {drawn} samples gave an answer; more of the same will not"
        leader = tally.groups[0]
        if leader.votes == drawn and drawn == min(config.probe, config.max_samples) and drawn > 1:
            return True, f"all {drawn} samples agree on {leader.representative}: the question looks easy"
        if remaining > 0 and leader_is_safe(tally, remaining):
            return True, f"{split}: {leader.representative} cannot be overtaken by the {remaining} samples left"
        confidence = beta_confidence(tally)
        if confidence > config.confidence:
            return True, f"{split}: P({leader.representative} is the majority) = {confidence:.3f} > {config.confidence}"
        if remaining <= 0:
            return True, f"{split}: max_samples={config.max_samples} reached, {leader.representative} leads"
        step = self._step(drawn, remaining)
        return False, (
            f"{split}: P({leader.representative} is the majority) = {confidence:.3f} ≤ {config.confidence}; "
            f"drawing {step} more"
        )

    async def _by_votes(self, ctx: RunContext, question: str, parent: int) -> Outcome:
        config = self.config
        samples = Samples(requested=config.max_samples)
        ctx.set_provisional(lambda: self._pick(ctx, samples))
        anchor, drawn, step, stage, converged = parent, 0, min(config.probe, config.max_samples), 0, False
        while True:
            before = samples.received
            await self.draw(ctx, question, step, parent=anchor, into=samples)
            drawn += step
            for candidate in samples.candidates[before:]:
                ctx.offer(candidate)
            evidence = [c.node_id for c in samples.candidates[before:] if c.node_id is not None] or [anchor]
            tally = self._tally(ctx, samples)
            if samples.budget_hit:
                reason = f"the budget holds no more samples; voting over {samples.received}"
                self._decide(ctx, evidence, "stop", reason, stage=stage, samples=samples.received)
                break
            stop, reason = self._verdict(tally, drawn, config.max_samples - drawn)
            if stop:
                converged = drawn < config.max_samples and bool(tally.groups)
                self._decide(ctx, evidence, "stop", reason, stage=stage, samples=samples.received)
                break
            step = self._step(drawn, config.max_samples - drawn)
            anchor = self._decide(
                ctx, evidence, "escalate", reason, stage=stage, samples=samples.received, next=f"{step} more samples"
            )
            stage += 1
        return self._vote(ctx, samples, parent, converged, stage, f"stage {stage + 1} (votes): {reason}")

    def _vote(
        self, ctx: RunContext, samples: Samples, parent: int, converged: bool, stages: int, detail: str | None = None
    ) -> Outcome:
        tally = self._tally(ctx, samples)
        winner = tally.winner
        data = {
            "votes": tally.counts(),
            "samples": samples.received,
            "requested": self.config.max_samples,
            "unanswered": tally.unanswered,
            "stages": stages + 1,
            "answers": sorted(c.answer for c in samples.candidates if c.answer is not None),
        }
        return vote_outcome(
            ctx,
            self.name,
            winner,
            samples,
            parent=parent,
            converged=converged,
            data=data,
            notes=samples.notes + samples.errors,
            detail=detail,
        )

    # --- a verifier's verdicts ---------------------------------------------------------------------------
    def _stages(self, best: Candidate) -> list[Strategy]:
        from thinkloop.strategies.best_of_n import BestOfN
        from thinkloop.strategies.critique import CritiqueRevise
        from thinkloop.strategies.tree_search import TreeSearch

        config = self.config
        common: dict[str, Any] = {
            "max_tokens": config.max_tokens,
            "system_prompt": config.system_prompt,
            "reread": config.reread,
        }
        stages: list[Strategy] = [BestOfN(n=config.bon_n, scorer="verifier", inner=self.inner, **common)]
        if config.revise_rounds:
            stages.append(
                CritiqueRevise(critic="verifier", max_rounds=config.revise_rounds, inner=_Given(best), **common)
            )
        if config.tree:
            stages.append(TreeSearch(value="verifier"))
        return stages

    async def _by_verifier(self, ctx: RunContext, question: str, parent: int) -> Outcome:
        first = await self.draw(ctx, question, 1, parent=parent)
        tried: list[Candidate] = []
        if first.candidates:
            checked, failure = await ctx.capture(lambda: ctx.verify(first.candidates[0], strategy=self.name))
            tried.append(checked if checked is not None else first.candidates[0])
            if failure is not None and failure.is_budget:
                first.budget_hit = True
        if not tried:
            stop: StopReason = "budget" if first.budget_hit else "error" if first.errors else "completed"
            self._decide(ctx, [parent], "stop", "no first answer to check", stage=0)
            return Outcome(
                candidate=None,
                stop_reason=stop,
                notes=tuple(first.errors),
                detail="stage 0 (one answer): no first answer to check",
            )
        best = tried[0]
        ctx.offer(best)
        anchor = best.node_id if best.node_id is not None else parent
        if best.accepted:
            reason = f"the verifier accepted the first answer {best.answer}"
            self._decide(ctx, [anchor], "stop", reason, stage=0)
            return Outcome(
                candidate=best, stop_reason="accepted", attempts=tuple(tried), detail=f"stage 0 (one answer): {reason}"
            )
        stop = "completed"
        stages = self._stages(best)
        detail = ""
        for stage, strategy in enumerate(stages, start=1):
            why = f"the verifier rejected {best.answer}" + (f" ({best.feedback})" if best.feedback else "")
            if first.budget_hit or ctx.ledger.exhausted():
                detail = f"stage {stage} ({strategy.label}) not run: {why}, and the budget is spent"
                self._decide(ctx, [anchor], "stop", f"{why}, and the budget is spent", stage=stage)
                stop = "budget"
                break
            anchor = self._decide(
                ctx, [anchor], "escalate", f"{why}: trying {strategy.label}", stage=stage, next=strategy.label
            )
            outcome = await strategy.solve(ctx, question, parent=anchor)
            tried.extend(outcome.attempts)
            found = outcome.candidate
            if found is not None and found.better_than(best):
                best = found
            anchor = best.node_id if best.node_id is not None else anchor
            if best.accepted:
                reason = f"{strategy.label} found an accepted answer, {best.answer}"
                self._decide(ctx, [anchor], "stop", reason, stage=stage)
                detail = f"stage {stage} ({strategy.label}): {reason}"
                stop = "accepted"
                break
            if outcome.stop_reason == "budget":
                self._decide(ctx, [anchor], "stop", f"{strategy.label} spent the budget", stage=stage)
                detail = f"stage {stage} ({strategy.label}) spent the budget before an answer passed the check"
                stop = "budget"
                break
        else:
            reason = "every stage ran and none was accepted; keeping the best-scored answer"
            self._decide(ctx, [anchor], "stop", reason, stage=len(stages))
            labels = ", ".join(s.label for s in stages)
            detail = f"no stage accepted an answer (one answer, then {labels}); keeping the best-scored one"
        ctx.offer(best)
        return Outcome(
            candidate=best, stop_reason=stop, attempts=tuple(tried), data={"scorer": "verifier"}, detail=detail
        )
