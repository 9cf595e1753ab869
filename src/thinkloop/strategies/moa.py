"""Mixture-of-agents: several proposers answer, an aggregator writes one answer from all of theirs.

Each of ``layers`` rounds asks every proposer (any backends, from Python ``proposers=[...]``; by default
``n`` samples of the run's model) for an answer, showing it the previous round's answers as references; then
the aggregator (the run's backend) synthesises one answer from the last round's (Wang et al., 2024). It pays
when the proposers are strong in different ways; with one model proposing to itself it is a costlier
self-refinement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from pydantic import Field

from thinkloop.backends.base import Backend
from thinkloop.exceptions import BudgetExhausted
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.failure import Failure
from thinkloop.runtime.result import Candidate, Outcome
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.types import ChatRequest, Message

AGGREGATE = (
    "You have been provided with a set of responses from various models to the latest user query. Synthesize "
    "these responses into a single, high-quality response. Critically evaluate the information, recognising that "
    "some of it may be biased or incorrect. Do not simply repeat the responses; give one refined, accurate and "
    "comprehensive reply.\n\nResponses from models:"
)


class MixtureOfAgentsConfig(StrategyConfig):
    n: int = Field(default=3, ge=1, le=16, description="Proposals per layer when no proposers are given.")
    layers: int = Field(default=1, ge=1, le=4, description="Proposal rounds before the aggregation.")
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)


def _references(answers: Sequence[Candidate]) -> str:
    return AGGREGATE + "".join(f"\n{i + 1}. {c.text}" for i, c in enumerate(answers))


def _with_references(request: ChatRequest, answers: Sequence[Candidate]) -> ChatRequest:
    """The request with the answers shown in its system message (one system message, as templates expect)."""
    if not answers:
        return request
    messages = list(request.messages)
    if messages[0].role == "system":
        messages[0] = Message(role="system", content=f"{messages[0].content}\n\n{_references(answers)}")
    else:
        messages.insert(0, Message(role="system", content=_references(answers)))
    return request.model_copy(update={"messages": tuple(messages)})


class MixtureOfAgents(Strategy):
    """Proposers answer (seeing the last round's answers), then the run's model aggregates them."""

    name = "moa"
    Config = MixtureOfAgentsConfig
    takes_inner = False
    config: MixtureOfAgentsConfig

    def __init__(self, *, proposers: Sequence[Backend] = (), **options: Any) -> None:
        super().__init__(**options)
        self.proposers = tuple(proposers)

    async def _layer(
        self,
        ctx: RunContext,
        question: str,
        under: list[int],
        references: list[Candidate],
        layer: int,
        failures: list[Failure],
    ) -> list[Candidate]:
        backends: list[Backend | None] = list(self.proposers) or [None] * self.config.n
        answers: list[Candidate | None] = [None] * len(backends)
        request = _with_references(self.request(question), references)

        async def one(index: int, backend: Backend | None) -> None:
            called, failure = await ctx.capture(
                lambda: ctx.call(
                    request,
                    parents=under,
                    strategy=self.name,
                    backend=backend,
                    data={"layer": layer, "proposer": index},
                )
            )
            if failure is not None:
                failures.append(failure)
                return
            node, completion = called
            answer = answers[index] = ctx.candidate(node, completion.choices[0])
            ctx.offer(answer)  # an answer in hand, should the budget stop the run here

        async with anyio.create_task_group() as group:
            for index, backend in enumerate(backends):
                group.start_soon(one, index, backend)
        return [a for a in answers if a is not None]

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        config = self.config
        failures: list[Failure] = []
        references: list[Candidate] = []
        under = [parent]
        try:
            for layer in range(config.layers):
                proposals = await self._layer(ctx, question, under, references, layer + 1, failures)
                if proposals:
                    references = proposals
                    under = [c.node_id for c in proposals if c.node_id is not None] or [parent]
                if any(f.is_budget for f in failures):
                    raise BudgetExhausted("no budget left for the next proposals", resource="tokens")
                if not proposals:
                    break
            if not references:
                return Outcome(candidate=None, stop_reason="error", notes=_messages(failures))
            request = _with_references(self.request(question), references)
            node, completion = await ctx.call(
                request, parents=under, kind="revise", strategy=self.name, data={"aggregate": len(references)}
            )
        except BudgetExhausted:
            best = next((c for c in references if c.answer is not None), references[0] if references else None)
            notes = _messages(failures)
            return Outcome(candidate=best, stop_reason="budget", notes=notes, attempts=tuple(references))
        answer = ctx.candidate(node, completion.choices[0])
        ctx.offer(answer)
        data = {
            "layers": config.layers,
            "proposals": len(references),
            "proposers": [b.name for b in self.proposers] or [ctx.backend.name] * config.n,
        }
        return Outcome(
            candidate=answer, stop_reason="completed", notes=_messages(failures), data=data, attempts=tuple(references)
        )


def _messages(failures: list[Failure]) -> tuple[str, ...]:
    """The infrastructure failures as a result's notes (a budget refusal is the stop reason, not a note)."""
    return tuple(f.message for f in failures if not f.is_budget)
