"""Universal self-consistency: the model itself picks the most consistent of its replies.

Self-consistency needs answers it can extract and compare; free-form replies (a summary, an explanation, code)
have none. USC (Chen et al., 2023) draws ``n`` replies and asks the model once which reply agrees most with the
others, then returns that reply whole. A selection it cannot read (no "Response N" in range) falls back to
a majority vote over extracted answers when there are any, else to the first reply, and says so.
"""

from __future__ import annotations

import re

from pydantic import Field

from thinkloop.exceptions import BudgetExhausted
from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.strategies.base import Strategy, StrategyConfig
from thinkloop.strategies.vote import majority_vote

SELECT_SYSTEM = "You compare several responses to one question and find the one most consistent with the others."
SELECT_PROMPT = """Question:
{question}

{responses}

Evaluate these responses. Select the most consistent response based on majority consensus.
End your reply with the line: The most consistent response is Response N."""
_CHOICE = re.compile(r"most consistent response is\s*\**\s*response\s*(\d+)", re.IGNORECASE)
_ANY = re.compile(r"response\s*(\d+)", re.IGNORECASE)


class UniversalSelfConsistencyConfig(StrategyConfig):
    n: int = Field(default=5, ge=1, le=32, description="Replies drawn (each shown whole to the selector).")
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)
    select_max_tokens: int = Field(default=256, ge=1, description="Room for the selection call.")


def parse_selection(text: str, count: int) -> int | None:
    """The 0-based index the selector chose, or ``None`` when no valid ``Response N`` can be read."""
    matches = _CHOICE.findall(text) or _ANY.findall(text)[-1:]
    if not matches:
        return None
    index = int(matches[-1]) - 1
    return index if 0 <= index < count else None


class UniversalSelfConsistency(Strategy):
    """Draw n replies and let the model pick the most consistent one (for free-form answers)."""

    name = "usc"
    Config = UniversalSelfConsistencyConfig
    config: UniversalSelfConsistencyConfig

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        config = self.config
        samples = Samples(requested=config.n)
        ctx.set_provisional(lambda: samples.candidates[0] if samples.candidates else None)
        await self.draw(ctx, question, config.n, parent=parent, into=samples)
        replies = sorted(samples.candidates, key=lambda c: c.node_id or 0)
        notes = list(samples.notes) + list(samples.errors)
        if not replies:
            return Outcome(candidate=None, stop_reason="budget" if samples.budget_hit else "error", notes=tuple(notes))
        data: dict[str, object] = {"replies": len(replies)}
        chosen: Candidate | None = replies[0] if len(replies) == 1 else None
        stop: StopReason = "budget" if samples.budget_hit else "completed"
        if chosen is None:
            shown = "\n\n".join(f"Response {i + 1}:\n{c.text}" for i, c in enumerate(replies))
            try:
                node, choice = await ctx.side_call(
                    SELECT_SYSTEM,
                    SELECT_PROMPT.format(question=question, responses=shown),
                    parents=[c.node_id for c in replies if c.node_id is not None] or [parent],
                    kind="vote",
                    strategy=self.name,
                    max_tokens=config.select_max_tokens,
                )
                index = parse_selection(choice.text, len(replies))
            except BudgetExhausted:
                index, stop = None, "budget"
            data["selected"] = None if index is None else index + 1
            if index is not None:
                chosen = replies[index]
            else:
                tally = majority_vote(replies)
                if tally.winner is not None:
                    chosen = tally.winner.best_member()
                    notes.append("the selection could not be read; a majority vote over the answers decided")
                else:
                    chosen = replies[0]
                    notes.append("the selection could not be read and no answers compare; the first reply stands")
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
        return Outcome(candidate=chosen, stop_reason=stop, notes=tuple(notes), data=data, attempts=tuple(replies))
