"""A cascade: answer with a cheap model, escalate to the run's (stronger) model only when needed.

The cheap model draws ``n`` samples. Their answer stands when at least ``agreement`` of them agree and, when
the run has a verifier, the verifier accepts it; otherwise the question escalates to the run's backend, which
answers with the ``inner`` strategy (default: self-consistency over ``strong_n`` samples). Most questions of
a mixed set are easy, and an easy question's cheap samples agree: those never reach the strong model. The
result's data says whether it escalated and why, and the tokens spent on each model (the saving is the strong
model's tokens a question did not need).

The cheap model is ``cheap=`` (any backend, from Python) or ``cheap_model`` (a GGUF file run in process,
``embedded`` for the shipped model, or a model name on ``cheap_base_url``, an OpenAI-compatible server).
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import Field

from thinkloop.backends.base import Backend
from thinkloop.exceptions import BudgetExhausted, ConfigurationError
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.strategies.vote import majority_vote


class CascadeConfig(StrategyConfig):
    n: int = Field(default=3, ge=1, le=64, description="Samples drawn from the cheap model.")
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)
    agreement: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Share of the cheap samples that must agree to answer."
    )
    strong_n: int = Field(default=3, ge=1, le=64, description="Samples of the strong model's vote (no inner).")
    cheap_model: str | None = Field(
        default=None, description="the cheap model: a .gguf file, embedded (the shipped model) or a served model"
    )
    cheap_base_url: str | None = Field(default=None, description="The cheap model's OpenAI-compatible server.")


class Cascade(Strategy):
    """Answer with a cheap model; escalate to the run's model when its samples disagree or a check fails."""

    name = "cascade"
    Config = CascadeConfig
    config: CascadeConfig

    def __init__(self, *, cheap: Backend | None = None, inner: Strategy | None = None, **options: Any) -> None:
        super().__init__(inner=inner, **options)
        self.cheap = cheap

    def _cheap_backend(self) -> tuple[Backend, bool]:
        """The cheap backend and whether this run made it (and so closes it)."""
        if self.cheap is not None:
            return self.cheap, False
        model, url = self.config.cheap_model, self.config.cheap_base_url
        if model is None:
            raise ConfigurationError("cascade needs a cheap model: cheap=<backend> or cheap_model=NAME")
        if url is None and (model.endswith(".gguf") or model == "embedded"):
            from thinkloop.backends.llamacpp import LlamaCppBackend

            return LlamaCppBackend(None if model == "embedded" else model), True
        from thinkloop.backends.openai import OpenAIBackend

        return OpenAIBackend(model, base_url=url), True

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        cheap, made = self._cheap_backend()
        try:
            return await self._solve(ctx, question, parent, cheap)
        finally:
            if made:
                with anyio.CancelScope(shield=True):
                    await cheap.aclose()

    async def _cheap_samples(
        self, ctx: RunContext, question: str, parent: int, cheap: Backend
    ) -> tuple[list[Candidate], int, list[Failure]]:
        """The cheap model's samples (one ``n`` request where it honours ``n``), its tokens, failures (a
        budget refusal among them)."""
        config = self.config
        request = self.request(question)
        batches = [config.n] if cheap.capabilities.honours_n else [1] * config.n
        candidates: list[Candidate] = []
        tokens = 0
        failures: list[Failure] = []

        async def one(k: int) -> None:
            nonlocal tokens
            called, failure = await ctx.capture(
                lambda: ctx.call(
                    request.model_copy(update={"n": k}),
                    parents=[parent],
                    strategy=self.name,
                    backend=cheap,
                    data={"tier": "cheap"},
                )
            )
            if failure is not None:
                failures.append(failure)
                return
            node, completion = called
            tokens += completion.usage.total_tokens or 0
            candidates.extend(ctx.candidate(node, choice) for choice in completion.choices)

        async with anyio.create_task_group() as group:
            for k in batches:
                group.start_soon(one, k)
        return candidates, tokens, failures

    async def _solve(self, ctx: RunContext, question: str, parent: int, cheap: Backend) -> Outcome:
        config = self.config
        data: dict[str, Any] = {"cheap_model": cheap.name, "strong_model": ctx.backend.name}
        samples, cheap_tokens, failures = await self._cheap_samples(ctx, question, parent, cheap)
        if not samples and any(f.is_budget for f in failures):
            return Outcome(candidate=None, stop_reason="budget", data=data)
        data["cheap_tokens"] = cheap_tokens
        for sample in samples:
            ctx.offer(sample)  # an answer in hand, should the budget stop the run before the strong model's
        tally = majority_vote(samples)
        winner = tally.winner
        share = winner.votes / len(samples) if winner is not None and samples else 0.0
        data["cheap_votes"] = tally.counts()
        reason = None
        chosen: Candidate | None = None
        if winner is None:
            reason = "the cheap model gave no answer" + (f" ({_said(failures[0])})" if failures else "")
        elif share < config.agreement:
            reason = f"the cheap samples disagree ({winner.votes} of {len(samples)} agree)"
        else:
            chosen = winner.best_member().model_copy(update={"answer": winner.representative})
            agreed = f"answered by the cheap model {cheap.name} ({winner.votes} of {len(samples)} samples agree)"
            if ctx.verifier is not None:
                try:
                    chosen = await ctx.verify(chosen, strategy=self.name)
                except BudgetExhausted:
                    return self._done(ctx, chosen, parent, data | {"escalated": False}, "budget")
                if not chosen.accepted:
                    reason = "the check rejected the cheap answer"
        if reason is None:
            data |= {"escalated": False, "strong_tokens": 0}
            return self._done(ctx, chosen, parent, data, "converged", detail=agreed)
        node = ctx.record(
            "decide",
            [c.node_id for c in samples if c.node_id is not None] or [parent],
            strategy=self.name,
            data={"decision": "escalate", "reason": reason},
        )
        before = ctx.usage.total_tokens
        if self.inner is not None:
            outcome = await self.solve_inner(ctx, question, parent=node.id)
        else:
            from thinkloop.strategies.self_consistency import SelfConsistency

            strong = SelfConsistency(
                n=config.strong_n,
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                system_prompt=config.system_prompt,
                reread=config.reread,
            )
            outcome = await strong.solve(ctx, question, parent=node.id)
        data |= {"escalated": True, "reason": reason, "strong_tokens": ctx.usage.total_tokens - before}
        fallback = outcome.candidate or chosen
        if fallback is None and winner is not None:  # the strong model gave nothing: the cheap vote stands
            fallback = winner.best_member().model_copy(update={"answer": winner.representative})
        detail = f"escalated to {ctx.backend.name}: {reason}"
        return self._done(
            ctx, fallback, parent, data, outcome.stop_reason, notes=(reason, *outcome.notes), detail=detail
        )

    def _done(
        self,
        ctx: RunContext,
        chosen: Candidate | None,
        parent: int,
        data: dict[str, Any],
        stop: StopReason,
        notes: tuple[str, ...] = (),
        detail: str | None = None,
    ) -> Outcome:
        if chosen is not None:
            node = ctx.record(
                "select",
                [chosen.node_id] if chosen.node_id is not None else [parent],
                strategy=self.name,
                answer=chosen.answer,
                text=chosen.text,
                data=data,
            )
            chosen = chosen.model_copy(update={"node_id": node.id})
            ctx.offer(chosen)
        return Outcome(candidate=chosen, stop_reason=stop, data=data, notes=notes, detail=detail)


def _said(failure: Failure) -> str:
    """A failure in a reason a person reads: a budget refusal as ``budget``, anything else by its message."""
    return "budget" if failure.is_budget else failure.message
