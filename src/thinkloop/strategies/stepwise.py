"""What reward-guided searches share: a solution grown one *step* at a time and a step reward per path.

A step is the text up to the next ``delimiter`` (default a blank line, ``"\\n\\n"``). Each step is drawn by
continuing the path so far as a final assistant message, with the delimiter as a stop string, so the model
writes exactly one more step (llama.cpp in process and as a server continue such a message; vLLM does with
``continue_final_message``). A step that states an answer (``Answer: ...``), an empty step or a path at
``max_steps`` is final. Paths are scored by a :class:`~thinkloop.verifiers.step_rewards.StepReward`
(``reward=``): a function given in Python, a PRM server (``prm_url``/``prm_model``), the run's verifier on each
prefix, or the model judging its own steps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from pydantic import Field

from thinkloop.exceptions import BudgetExhausted, ConfigurationError
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.strategies.base import ANSWER_FORMAT, Strategy, StrategyConfig
from thinkloop.strategies.vote import majority_vote
from thinkloop.types import Message
from thinkloop.verifiers.step_rewards import (
    Aggregation,
    JudgeStepReward,
    RewardModelServer,
    StepReward,
    VerifierStepReward,
    aggregate,
)

_FINAL = re.compile(r"answer\s*[:：]|\\boxed\s*\{", re.IGNORECASE)
"""What marks a final step: ``Answer: ...`` (the prompt's format) or a ``\\boxed{...}``."""

STEP_SYSTEM = (
    "You are a careful problem solver. Solve the problem step by step, one short step per paragraph, "
    f"separated by blank lines. {ANSWER_FORMAT}"
)


class StepSearchConfig(StrategyConfig):
    system_prompt: str = STEP_SYSTEM
    temperature: float | None = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=128, ge=1, description="Completion limit of each step.")
    delimiter: str = Field(default="\n\n", min_length=1, description="What ends a step (a stop string).")
    max_steps: int = Field(default=8, ge=1, le=64, description="The most steps in one path.")
    reward: Literal["auto", "judge", "verifier", "server", "function"] = Field(
        default="auto", description="what scores a path: auto is the function, else prm_url, else judge"
    )
    prm_url: str | None = Field(default=None, description="base URL of a vLLM pooling server (reward=server).")
    prm_model: str | None = Field(default=None, description="The PRM's model name on that server.")
    aggregation: Aggregation = Field(default="last", description="How a path's step rewards make one reward.")
    pick: Literal["weighted", "best", "vote"] = Field(
        default="weighted", description="the answer of finished paths: reward-weighted vote, best path, plain vote"
    )


@dataclass
class Path:
    """One partial solution: its steps, the graph node of its last step and its reward."""

    steps: tuple[str, ...]
    node_id: int
    reward: float = 0.0
    final: bool = False
    answer: str | None = None
    parent: Path | None = field(default=None, repr=False, compare=False)
    """The path this one extends by a step (``None``: a first step)."""

    def text(self, delimiter: str) -> str:
        return delimiter.join(self.steps)


class StepSearch(Strategy):
    """Base of the reward-guided searches (not registered itself)."""

    Config = StepSearchConfig
    takes_inner = False  # a step is a continuation of a path, not a whole answer
    config: StepSearchConfig

    def __init__(self, *, step_reward: StepReward | None = None, **options: Any) -> None:
        super().__init__(**options)
        config = self.config
        if config.reward == "function" and step_reward is None:
            raise ConfigurationError(f"{type(self).__name__}: reward=function needs step_reward=<StepReward>")
        if config.reward == "server" and not (config.prm_url and config.prm_model):
            raise ConfigurationError(f"{type(self).__name__}: reward=server needs prm_url and prm_model")
        self.step_reward = step_reward

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        rewarder = self.rewarder(ctx)
        try:
            return await self.search(ctx, question, parent, rewarder)
        finally:
            if isinstance(rewarder, RewardModelServer) and rewarder is not self.step_reward:
                with anyio.CancelScope(shield=True):
                    await rewarder.aclose()

    async def search(self, ctx: RunContext, question: str, parent: int, rewarder: StepReward) -> Outcome:
        """Grow paths under ``parent`` guided by ``rewarder`` and pick the answer."""
        raise NotImplementedError

    def rewarder(self, ctx: RunContext) -> StepReward:
        """The step reward of this run (made per run: a judge's or a server's memo is the run's)."""
        config = self.config
        mode = config.reward
        if mode == "auto":
            mode = "function" if self.step_reward else "server" if config.prm_url else "judge"
        if mode == "function" and self.step_reward is not None:  # (__init__ refuses reward=function without one)
            return self.step_reward
        if mode == "server":
            if config.prm_url is None or config.prm_model is None:
                raise ConfigurationError(f"{self.name}: a reward server needs prm_url and prm_model")
            return RewardModelServer(config.prm_url, config.prm_model)
        if mode == "verifier":
            if ctx.verifier is None:
                raise ConfigurationError(f"{self.name}: reward=verifier needs a run verifier")
            return VerifierStepReward(ctx.verifier, delimiter=config.delimiter)
        return JudgeStepReward()

    # --- steps ------------------------------------------------------------------------------------------
    async def extend(self, ctx: RunContext, question: str, path: Path | None, k: int, parent: int) -> list[Path]:
        """``k`` next steps of ``path`` (``None``: first steps), each a new path. Budget refusals raise
        :class:`BudgetExhausted` only when no step came back."""
        config = self.config
        steps = path.steps if path is not None else ()
        extra = (Message(role="assistant", content=config.delimiter.join(steps) + config.delimiter),) if steps else ()
        request = self.request(question, extra=extra, stop=(config.delimiter,))
        under = path.node_id if path is not None else parent
        samples = await ctx.sample(request, k, parents=[under], kind="expand", strategy=self.name)
        if samples.budget_hit and not samples.candidates:
            raise BudgetExhausted("no budget left for another step", resource="tokens")
        grown = []
        for candidate in sorted(samples.candidates, key=lambda c: c.node_id or 0):
            step = candidate.text.strip()
            # Only a step that states its answer ends a path: any step's last number is not an answer.
            stated = bool(_FINAL.search(step))
            new = (*steps, step) if step else steps
            final = not step or stated or len(new) >= config.max_steps
            answer = ctx.extract(step) if step and final else None
            grown.append(Path(steps=new, node_id=candidate.node_id or under, final=final, answer=answer, parent=path))
        return grown

    async def extend_all(
        self, ctx: RunContext, question: str, paths: Sequence[tuple[Path, int]], parent: int
    ) -> tuple[list[Path], bool]:
        """Extend each ``(path, k)`` by ``k`` next steps, concurrently; returns the new paths (in a fixed
        order) and whether the budget refused some."""
        grown: list[list[Path]] = [[] for _ in paths]
        refused = False

        async def one(index: int, path: Path, k: int) -> None:
            nonlocal refused
            try:
                grown[index] = await self.extend(ctx, question, path, k, parent)
            except BudgetExhausted:
                refused = True

        async with anyio.create_task_group() as group:
            for index, (path, k) in enumerate(paths):
                group.start_soon(one, index, path, k)
        return [p for batch in grown for p in batch], refused

    async def score(self, ctx: RunContext, question: str, paths: Sequence[Path], rewarder: StepReward) -> bool:
        """Set each path's reward (its step rewards aggregated) and show it on the path's node. Returns
        whether the budget refused some scoring (those paths keep reward 0)."""
        refused = False

        async def one(path: Path) -> None:
            nonlocal refused
            if not path.steps:
                path.reward = 0.0
                return
            try:
                rewards = await rewarder.score_steps(question, path.steps, ctx, parent=path.node_id)
            except Exception as exc:
                if not _budget_refusal(exc):
                    raise
                refused = True
                return
            path.reward = aggregate(rewards, self.config.aggregation)
            node = ctx.graph.node(path.node_id)
            ctx.mark(node, node.status, score=path.reward, answer=path.answer)
            if path.final:
                ctx.offer(self.candidate(path))

        async with anyio.create_task_group() as group:
            for path in paths:
                group.start_soon(one, path)
        return refused

    def candidate(self, path: Path) -> Candidate:
        return Candidate(
            text=path.text(self.config.delimiter), answer=path.answer, node_id=path.node_id, score=path.reward
        )

    def prune(self, ctx: RunContext, path: Path, reason: str) -> None:
        node = ctx.graph.node(path.node_id)
        if node.status != "pruned":
            ctx.mark(node, "pruned", data={**(node.data or {}), "pruned": reason})

    # --- the answer ---------------------------------------------------------------------------------------
    def finish(
        self,
        ctx: RunContext,
        finished: list[Path],
        active: list[Path],
        parent: int,
        stop: StopReason,
        data: dict[str, Any],
    ) -> Outcome:
        """Pick among finished paths (else the best unfinished one) and record the pick."""
        config = self.config
        pool = [p for p in finished if p.answer is not None] or finished or active
        chosen: Candidate | None = None
        if pool:
            candidates = [self.candidate(p) for p in pool]
            if config.pick == "best":
                chosen = max(candidates, key=lambda c: (c.score or 0.0, -(c.node_id or 0)))
            else:
                weight = (lambda c: c.score or 0.0) if config.pick == "weighted" else None
                tally = majority_vote(candidates, weight=weight)
                if tally.winner is not None:
                    best = max(tally.winner.members, key=lambda c: (c.score or 0.0, -(c.node_id or 0)))
                    chosen = best.model_copy(update={"answer": tally.winner.representative})
                    data["votes"] = tally.counts()
                    data["weights"] = tally.weights()
                else:
                    chosen = max(candidates, key=lambda c: (c.score or 0.0, -(c.node_id or 0)))
        data |= {"finished": len(finished), "rewards": sorted((round(p.reward, 4) for p in finished), reverse=True)}
        if chosen is not None:
            node = ctx.record(
                "select",
                [chosen.node_id] if chosen.node_id is not None else [parent],
                strategy=self.name,
                answer=chosen.answer,
                score=chosen.score,
                text=chosen.text,
                data=data,
            )
            chosen = chosen.model_copy(update={"node_id": node.id})
            ctx.offer(chosen)
        how = {"weighted": "the reward-weighted vote", "best": "the best reward", "vote": "the vote"}[config.pick]
        if not finished:
            detail = f"no path finished; the best of {len(active)} open paths stands" if active else None
        elif chosen is not None:
            detail = f"{chosen.answer} chosen by {how} over {len(finished)} finished paths"
        else:
            detail = None
        return Outcome(
            candidate=chosen,
            stop_reason=stop,
            data=data,
            attempts=tuple(self.candidate(p) for p in finished),
            detail=detail,
        )


def _budget_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is the budget refusing a call (alone, or all of a task group's errors)."""
    if isinstance(exc, BudgetExhausted):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_budget_refusal(e) for e in exc.exceptions)
    return False
