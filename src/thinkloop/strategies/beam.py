"""Reward-guided beam search and diverse verifier tree search (DVTS), step by step (search-and-learn).

Both keep ``n`` paths in flight and draw ``beam_width`` next steps for every path they keep, scoring each
path with a step reward (a PRM, a verifier, or the model as judge):

- ``beam``: one beam: of all open paths keep the ``n // beam_width`` best, prune the rest, extend each kept
  one ``beam_width`` ways; stop when ``n`` paths have finished or none is open.
- ``dvts``: ``n // beam_width`` independent subtrees, each greedy: it keeps only its best path at each
  step and extends it ``beam_width`` ways until that path finishes. The subtrees never compete, so the
  answers stay diverse, which is why DVTS beats beam search at large ``n`` (Beeching et al., 2024).

Choose them with a step reward you trust (a PRM) on multi-step problems; with the model judging its own
steps they rarely beat best-of-n at equal tokens: compare at matched compute first.
"""

from __future__ import annotations

import anyio
from pydantic import Field

from thinkloop.exceptions import BudgetExhausted
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Outcome, StopReason
from thinkloop.strategies.stepwise import Path, StepSearch, StepSearchConfig
from thinkloop.verifiers.step_rewards import StepReward


class BeamConfig(StepSearchConfig):
    n: int = Field(default=8, ge=1, le=128, description="Paths in flight (N).")
    beam_width: int = Field(default=4, ge=1, le=64, description="Next steps drawn per kept path (M).")


def _ranked(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (-p.reward, p.node_id))


class BeamSearch(StepSearch):
    """Step-level beam search guided by a step reward: keep the n/beam_width best paths per step."""

    name = "beam"
    Config = BeamConfig
    config: BeamConfig

    async def search(self, ctx: RunContext, question: str, parent: int, rewarder: StepReward) -> Outcome:
        config = self.config
        keep = max(1, config.n // config.beam_width)
        finished: list[Path] = []
        active: list[Path] = []
        stop: StopReason = "completed"
        depth = 0
        try:
            active = await self.extend(ctx, question, None, config.n, parent)
            while active:
                depth += 1
                refused = await self.score(ctx, question, active, rewarder)
                finished.extend(p for p in active if p.final)
                open_paths = [p for p in active if not p.final]
                if refused:
                    stop, active = "budget", open_paths
                    break
                if len(finished) >= config.n or not open_paths:
                    active = []
                    break
                ranked = _ranked(open_paths)
                kept = ranked[:keep]
                for path in ranked[keep:]:
                    self.prune(ctx, path, f"reward {path.reward:.3f} outside the beam of {keep}")
                ctx.record(
                    "select",
                    [p.node_id for p in kept],
                    strategy=self.name,
                    data={
                        "depth": depth,
                        "kept": [p.node_id for p in kept],
                        "rewards": [round(p.reward, 4) for p in kept],
                    },
                )
                active, refused = await self.extend_all(ctx, question, [(p, config.beam_width) for p in kept], parent)
                if refused:
                    stop = "budget"
                    if active:
                        await self.score(ctx, question, active, rewarder)
                        finished.extend(p for p in active if p.final)
                    active = kept + [p for p in active if not p.final]
                    break
                if not active:  # every kept path's extension failed (errors): nothing more to grow
                    active = kept
                    break
        except BudgetExhausted:
            stop = "budget"
        return self.finish(ctx, finished, active, parent, stop, {"mode": "beam", "depth": depth, "keep": keep})


class DVTS(StepSearch):
    """Diverse verifier tree search: n/beam_width independent greedy subtrees, each guided by a step reward."""

    name = "dvts"
    Config = BeamConfig
    config: BeamConfig

    async def search(self, ctx: RunContext, question: str, parent: int, rewarder: StepReward) -> Outcome:
        config = self.config
        subtrees = max(1, config.n // config.beam_width)
        finished: list[Path | None] = [None] * subtrees
        last: list[Path | None] = [None] * subtrees
        refused = False

        async def subtree(index: int) -> None:
            nonlocal refused
            path: Path | None = None
            while True:
                try:
                    children = await self.extend(ctx, question, path, config.beam_width, parent)
                except BudgetExhausted:
                    refused = True
                    return
                if not children:
                    return
                if await self.score(ctx, question, children, rewarder):
                    refused = True
                ranked = _ranked(children)
                best = ranked[0]
                for other in ranked[1:]:
                    self.prune(
                        ctx, other, f"subtree {index}: reward {other.reward:.3f} below its best {best.reward:.3f}"
                    )
                last[index] = path = best
                if best.final:
                    finished[index] = best
                    return
                if refused:
                    return

        async with anyio.create_task_group() as group:
            for index in range(subtrees):
                group.start_soon(subtree, index)
        done = [p for p in finished if p is not None]
        open_paths = [p for p, f in zip(last, finished, strict=True) if f is None and p is not None]
        stop: StopReason = "budget" if refused else "completed"
        return self.finish(ctx, done, open_paths, parent, stop, {"mode": "dvts", "subtrees": subtrees})
