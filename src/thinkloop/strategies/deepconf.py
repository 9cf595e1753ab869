"""Confidence-aware voting (DeepConf, Fu et al. 2025): votes weighted by how sure the model was.

Plain self-consistency counts every trace the same, so a plurality of confused traces outvotes a minority
of sure ones. DeepConf reads the model's token log-probabilities (see :mod:`.confidence`) and

- *offline*: draws ``n`` traces, keeps the ``keep_percent`` most confident and votes with each kept trace
  weighted by its confidence;
- *online*: draws ``warmup`` traces, sets a threshold at the confidence below which the least confident
  ``100 - keep_percent`` % of them fall, then draws more traces ``parallel`` at a time, dropping any whose
  lowest group confidence falls below the threshold, and stops sampling as soon as the leading answer holds
  ``consensus`` of the weighted vote. With ``chunk_tokens`` each trace is drawn in pieces of that many
  tokens (each piece continues the reply so far as a final assistant message) and a trace is stopped at the
  first piece whose group confidence falls below the threshold: its remaining tokens are never generated.

Choose it where the model's confidence tracks its correctness (it usually does on maths); it needs a
backend that returns log-probabilities (``LlamaCppBackend(logprobs=True)``, ``llama_server(logprobs=True)``,
OpenAI-compatible servers). A backend that cannot is an error here, never a silent plain vote
(``without_logprobs=vote`` makes it a plain vote, said so in the notes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from thinkloop.exceptions import BackendError, BudgetExhausted, ConfigurationError
from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.result import Candidate, Outcome
from thinkloop.runtime.trace import redact
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.strategies.confidence import Measure, group_confidences, measure, percentile, token_confidences
from thinkloop.strategies.self_consistency import vote_outcome
from thinkloop.strategies.vote import VoteResult, exact_equivalent, majority_vote
from thinkloop.types import Choice, Message


class DeepConfConfig(StrategyConfig):
    n: int = Field(default=16, ge=1, le=128, description="Traces to draw (the most, in online mode).")
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)
    mode: Literal["offline", "online"] = Field(
        default="offline", description="offline: filter n traces; online: warm-up threshold, early stops"
    )
    measure: Measure = Field(default="lowest_group", description="the trace confidence that filters and weighs")
    window: int = Field(default=64, ge=1, description="Tokens per sliding group (lowest_group, bottom10).")
    tail_tokens: int = Field(default=64, ge=1, description="Tokens the tail measure reads.")
    keep_percent: float = Field(
        default=90.0, gt=0.0, le=100.0, description="The most confident traces kept, in percent (DeepConf's eta)."
    )
    warmup: int = Field(default=4, ge=1, description="Online: traces drawn whole to set the threshold.")
    consensus: float = Field(
        default=0.95, gt=0.5, le=1.0, description="Online: stop once the leader holds this share of the vote."
    )
    parallel: int = Field(default=2, ge=1, description="Online: traces drawn per round after the warm-up.")
    chunk_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Online: draw traces in pieces of this many tokens and stop one early (null: whole)",
    )
    top_logprobs: int = Field(default=5, ge=0, le=20, description="Alternatives asked per token (0: chosen only).")
    equivalence: Literal["math", "exact"] = "math"
    without_logprobs: Literal["error", "vote"] = Field(
        default="error", description="a backend without logprobs: fail (error) or vote plain, saying so (vote)"
    )


@dataclass
class _Trace:
    candidate: Candidate
    confidence: float | None
    """The configured measure (``None``: the reply carried no log-probabilities)."""
    lowest_group: float | None


@dataclass
class _State:
    traces: list[_Trace] = field(default_factory=list)
    kept: list[_Trace] = field(default_factory=list)
    stopped: int = 0
    """Online traces stopped early (or dropped) for falling below the threshold."""
    samples: Samples = field(default_factory=Samples)
    threshold: float | None = None


class DeepConf(Strategy):
    """Vote over traces weighted by the model's own token confidence, dropping the least confident
    (DeepConf)."""

    name = "deepconf"
    Config = DeepConfConfig
    takes_inner = False  # it reads the token log-probabilities of its own calls
    needs_logprobs = True
    config: DeepConfConfig

    # --- reading traces -------------------------------------------------------------------------------
    def _trace(self, candidate: Candidate, choice: Choice | None, confidences: list[float] | None = None) -> _Trace:
        config = self.config
        if confidences is None and choice is not None:
            confidences = token_confidences(choice)
        if not confidences:
            return _Trace(candidate, None, None)
        value = measure(confidences, config.measure, window=config.window, tail=config.tail_tokens)
        lowest = min(group_confidences(confidences, config.window))
        return _Trace(candidate.model_copy(update={"data": {"confidence": value}}), value, lowest)

    @staticmethod
    def _choice(ctx: RunContext, candidate: Candidate) -> Choice | None:
        """The reply behind a sampled candidate: its call's choice, or its share of an ``n``-call's."""
        if candidate.node_id is None:
            return None
        node = ctx.graph.node(candidate.node_id)
        if node.completion is not None:
            return node.completion.choices[0]
        index = (node.data or {}).get("choice")
        parent = ctx.graph.node(node.parents[0]) if node.parents else None
        if index is None or parent is None or parent.completion is None:
            return None
        return parent.completion.choices[index]

    def _check_backend(self, ctx: RunContext) -> bool:
        """Whether confidences can be had; raise (or note a plain vote) where they cannot."""
        if ctx.backend.capabilities.logprobs:
            return True
        if self.config.without_logprobs == "error":
            raise ConfigurationError(
                f"deepconf needs token log-probabilities and backend {ctx.backend.name!r} gives none "
                "(LlamaCppBackend(logprobs=True), llama_server(logprobs=True) or an OpenAI-compatible server "
                "do); without_logprobs=vote votes plain instead"
            )
        return False

    def _sampling(self, with_confidence: bool = True) -> dict[str, Any]:
        if not with_confidence:
            return {}
        return {"logprobs": True, "top_logprobs": self.config.top_logprobs or None}

    # --- the vote -------------------------------------------------------------------------------------
    def _tally(self, ctx: RunContext, traces: list[_Trace]) -> VoteResult:
        weights = {id(t.candidate): t.confidence for t in traces}
        floor = min((w for w in weights.values() if w is not None), default=1.0)
        return majority_vote(
            [t.candidate for t in traces],
            weight=lambda c: weights.get(id(c)) or floor,  # a reply without logprobs counts as the least sure
            equivalent=exact_equivalent if self.config.equivalence == "exact" else None,
        )

    def _prune(self, ctx: RunContext, trace: _Trace, reason: str) -> None:
        node_id = trace.candidate.node_id
        if node_id is not None:
            node = ctx.graph.node(node_id)
            ctx.mark(node, "pruned", data={**(node.data or {}), "pruned": reason})

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        state = _State(samples=Samples(requested=self.config.n))
        with_confidence = self._check_backend(ctx)

        def provisional() -> Candidate | None:
            winner = self._tally(ctx, state.kept or state.traces).winner
            return winner.best_member().model_copy(update={"answer": winner.representative}) if winner else None

        ctx.set_provisional(provisional)
        converged = False
        if self.config.mode == "online" and with_confidence:
            converged = await self._online(ctx, question, parent, state)
        else:
            await self._offline(ctx, question, parent, state, with_confidence)
        return self._decide(ctx, state, parent, converged, with_confidence)

    async def _draw(
        self, ctx: RunContext, question: str, k: int, parent: int, state: _State, with_confidence: bool = True
    ) -> list[_Trace]:
        request = self.request(question, **self._sampling(with_confidence))
        batch = await ctx.sample(request, k, parents=[parent], strategy=self.name)
        state.samples.budget_hit = state.samples.budget_hit or batch.budget_hit
        state.samples.errors.extend(batch.errors)
        state.samples.notes.extend(batch.notes)
        traces = [self._trace(c, self._choice(ctx, c) if with_confidence else None) for c in batch.candidates]
        state.traces.extend(traces)
        state.samples.candidates.extend(t.candidate for t in traces)
        return traces

    async def _offline(self, ctx: RunContext, question: str, parent: int, state: _State, with_confidence: bool) -> None:
        config = self.config
        traces = await self._draw(ctx, question, config.n, parent, state, with_confidence)
        if not with_confidence:
            state.kept = traces
            return
        keep = max(1, math.floor(len(traces) * config.keep_percent / 100 + 1e-9))
        ranked = sorted(
            traces, key=lambda t: (-(t.confidence if t.confidence is not None else -math.inf), t.candidate.node_id or 0)
        )
        state.kept = ranked[:keep]
        if ranked[keep:]:
            state.threshold = state.kept[-1].confidence
        for trace in ranked[keep:]:
            self._prune(ctx, trace, f"confidence {_shown(trace.confidence)} outside the top {config.keep_percent:g}%")

    def _settled(self, ctx: RunContext, state: _State) -> bool:
        tally = self._tally(ctx, state.kept)
        total = math.fsum(g.weight for g in tally.groups)
        return bool(tally.groups) and total > 0 and tally.groups[0].weight / total >= self.config.consensus

    async def _online(self, ctx: RunContext, question: str, parent: int, state: _State) -> bool:
        config = self.config
        warm = await self._draw(ctx, question, min(config.warmup, config.n), parent, state)
        lows = [t.lowest_group for t in warm if t.lowest_group is not None]
        if not lows:
            state.kept = warm
            state.samples.notes.append("the warm-up traces carried no log-probabilities: no threshold, plain vote")
            return False
        state.threshold = threshold = percentile(lows, 100 - config.keep_percent)
        for trace in warm:
            if trace.lowest_group is not None and trace.lowest_group < threshold:
                self._prune(
                    ctx, trace, f"group confidence {_shown(trace.lowest_group)} below the threshold {_shown(threshold)}"
                )
                state.stopped += 1
            else:
                state.kept.append(trace)
        drawn = len(warm)
        while drawn < config.n and not state.samples.budget_hit:
            if self._settled(ctx, state):
                return True
            size = min(config.parallel, config.n - drawn)
            if config.chunk_tokens is None:
                fresh = await self._draw(ctx, question, size, parent, state)
            else:
                fresh = await self._draw_chunked(ctx, question, size, parent, state, threshold)
            drawn += size
            for trace in fresh:
                if trace.lowest_group is not None and trace.lowest_group < threshold:
                    node_id = trace.candidate.node_id
                    if node_id is not None and ctx.graph.node(node_id).status != "pruned":
                        self._prune(
                            ctx,
                            trace,
                            f"group confidence {_shown(trace.lowest_group)} below the threshold {_shown(threshold)}",
                        )
                    state.stopped += 1
                else:
                    state.kept.append(trace)
        return False

    async def _draw_chunked(
        self, ctx: RunContext, question: str, k: int, parent: int, state: _State, threshold: float
    ) -> list[_Trace]:
        """``k`` traces, each drawn ``chunk_tokens`` at a time and stopped once a full group's confidence
        falls below ``threshold`` (DeepConf's early termination)."""
        import anyio

        traces: list[_Trace] = []

        async def one() -> None:
            trace = await self._chunked_trace(ctx, question, parent, state, threshold)
            if trace is not None:
                traces.append(trace)

        async with anyio.create_task_group() as group:
            for _ in range(k):
                group.start_soon(one)
        traces.sort(key=lambda t: t.candidate.node_id or 0)
        state.traces.extend(traces)
        state.samples.candidates.extend(t.candidate for t in traces)
        return traces

    async def _chunked_trace(
        self, ctx: RunContext, question: str, parent: int, state: _State, threshold: float
    ) -> _Trace | None:
        config = self.config
        confidences: list[float] = []
        text, generated, under, chunk = "", 0, parent, 0
        while True:
            extra = (Message(role="assistant", content=text),) if text else ()
            limit = min(config.chunk_tokens or config.max_tokens, config.max_tokens - generated)
            request = self.request(question, extra=extra, max_tokens=limit, **self._sampling())
            try:
                node, completion = await ctx.call(
                    request, parents=[under], strategy=self.name, data={"chunk": chunk} if chunk else None
                )
            except BudgetExhausted:
                state.samples.budget_hit = True
                break
            except BackendError as exc:
                state.samples.errors.append(redact(str(exc)))
                break
            choice = completion.choices[0]
            text += choice.text
            confidences.extend(token_confidences(choice) or ())
            generated += completion.usage.completion_tokens or len(choice.logprobs or ()) or limit
            under, chunk = node.id, chunk + 1
            finished = choice.finish_reason != "length" or generated >= config.max_tokens
            if len(confidences) >= config.window or finished:
                lowest = min(group_confidences(confidences, config.window)) if confidences else None
                if lowest is not None and lowest < threshold and not finished:
                    ctx.mark(
                        node,
                        "pruned",
                        data={
                            **(node.data or {}),
                            "pruned": (
                                f"stopped after {generated} tokens: group confidence {_shown(lowest)} below the "
                                f"threshold {_shown(threshold)}"
                            ),
                        },
                    )
                    state.stopped += 1
                    return None
            if finished:
                break
        if under == parent:
            return None
        answer = ctx.extract(text)
        candidate = Candidate(text=text, answer=answer, node_id=under, finish_reason=choice.finish_reason)
        return self._trace(candidate, None, confidences or None)

    def _decide(self, ctx: RunContext, state: _State, parent: int, converged: bool, with_confidence: bool) -> Outcome:
        config = self.config
        tally = self._tally(ctx, state.kept)
        notes = list(state.samples.notes)
        if not with_confidence:
            notes.append(f"{ctx.backend.name} gives no token log-probabilities: a plain, unweighted vote")
        missing = sum(t.confidence is None for t in state.traces)
        if with_confidence and missing:
            notes.append(
                f"{missing} of {len(state.traces)} traces came back without log-probabilities; each "
                "voted as the least confident trace"
            )
        notes.extend(state.samples.errors)
        data = {
            "mode": config.mode,
            "measure": config.measure,
            "votes": tally.counts(),
            "weights": tally.weights(),
            "samples": len(state.traces) + (state.stopped if config.chunk_tokens else 0),
            "kept": len(state.kept),
            "stopped": state.stopped,
            "threshold": state.threshold,
            "confidences": sorted((t.confidence for t in state.traces if t.confidence is not None), reverse=True),
            "requested": config.n,
        }
        samples = Samples(
            candidates=[t.candidate for t in state.kept],
            requested=config.n,
            budget_hit=state.samples.budget_hit,
            errors=state.samples.errors,
        )
        winner, total = tally.winner, math.fsum(g.weight for g in tally.groups)
        detail = None
        if winner is not None and total > 0:
            share = f"{winner.representative} holds {winner.weight / total:.0%} of the confidence-weighted vote"
            drawn = len(state.traces) + (state.stopped if config.chunk_tokens else 0)
            detail = (
                f"the weighted vote settled after {drawn} of {config.n} traces: {share}"
                if converged
                else f"{share} of the {len(state.kept)} most confident of {drawn} traces"
            )
        return vote_outcome(
            ctx, self.name, winner, samples, parent=parent, converged=converged, data=data, notes=notes, detail=detail
        )


def _shown(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"
