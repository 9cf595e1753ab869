"""Particle filtering: sequential Monte Carlo over partial solutions, resampled by step reward.

``n`` particles (paths) grow one step at a time. After each step every particle is weighted by its step
reward, ``w ∝ exp(reward / resample_temperature)``, and ``n`` particles are drawn again in proportion to
those weights (``systematic`` or ``multinomial`` resampling, from a seeded generator so a run replays):
a promising path is copied and continued several ways, a poor one dies out, rather than being cut off for
good as a beam would cut it (Puri et al., 2025, "A Probabilistic Inference Approach to Inference-Time
Scaling of LLMs"; its_hub). Finished particles stay in the population with their reward and keep being
resampled, but are not extended. The answer is the reward-weighted vote of the final population (copies
count: they are the posterior's mass).

Particle Gibbs (``sweeps`` > 1): after a sweep, one finished particle is drawn by weight and its lineage becomes
the next sweep's *reference*: it holds one of the ``n`` places at every step, the other ``n - 1`` are drawn
and resampled around it, so a good path found once is never lost and the rest explore near it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from thinkloop.exceptions import BudgetExhausted
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Outcome, StopReason
from thinkloop.strategies.stepwise import Path, StepSearch, StepSearchConfig
from thinkloop.verifiers.step_rewards import StepReward


class ParticleConfig(StepSearchConfig):
    n: int = Field(default=8, ge=1, le=128, description="Particles (paths) in the population.")
    resample_temperature: float = Field(
        default=0.2, gt=0.0, description="Weights are exp(reward / this): lower resamples more greedily."
    )
    resampling: Literal["systematic", "multinomial"] = "systematic"
    seed: int = Field(default=0, description="Seed of the resampling draws (a run replays with the same seed).")
    sweeps: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Particle Gibbs: sweeps, each after the first conditioned on a reference particle of the last",
    )


def weights(rewards: Sequence[float], temperature: float) -> list[float]:
    """Normalised resampling weights, ``softmax(reward / temperature)``."""
    top = max(rewards)
    raw = [math.exp((r - top) / temperature) for r in rewards]
    total = math.fsum(raw)
    return [w / total for w in raw]


def resample(probabilities: Sequence[float], k: int, rng: random.Random, how: str = "systematic") -> list[int]:
    """``k`` indices drawn in proportion to ``probabilities``. Systematic resampling: one uniform offset and
    ``k`` evenly spaced pointers, so a particle of weight ``w`` gets ``floor(k w)`` or ``ceil(k w)`` copies."""
    if how == "multinomial":
        return sorted(rng.choices(range(len(probabilities)), weights=probabilities, k=k))
    start = rng.random() / k
    chosen, cumulative, index = [], probabilities[0], 0
    for j in range(k):
        pointer = start + j / k
        while pointer > cumulative and index < len(probabilities) - 1:
            index += 1
            cumulative += probabilities[index]
        chosen.append(index)
    return chosen


class ParticleFilter(StepSearch):
    """Sequential Monte Carlo over reasoning steps: resample the paths by step reward after every step."""

    name = "particles"
    Config = ParticleConfig
    config: ParticleConfig

    async def search(self, ctx: RunContext, question: str, parent: int, rewarder: StepReward) -> Outcome:
        config = self.config
        rng = random.Random(config.seed)
        finished: list[Path] = []
        open_paths: list[Path] = []
        reference: list[Path] | None = None
        stop: StopReason = "completed"
        rounds = 0
        for sweep in range(config.sweeps):
            population, stop, done = await self._sweep(ctx, question, parent, rewarder, rng, reference, sweep + 1)
            rounds += done
            finished += [p for p in population if p.final]
            open_paths = [p for p in population if not p.final]
            ends = [p for p in population if p.final]
            if stop != "completed" or not ends:
                break
            # Particle Gibbs: the next sweep is conditioned on one final particle drawn by weight
            chosen = ends[resample(weights([p.reward for p in ends], config.resample_temperature), 1, rng)[0]]
            reference = _lineage(chosen)
        return self.finish(
            ctx, finished, open_paths, parent, stop, {"mode": "particles", "rounds": rounds, "sweeps": config.sweeps}
        )

    async def _sweep(
        self,
        ctx: RunContext,
        question: str,
        parent: int,
        rewarder: StepReward,
        rng: random.Random,
        reference: list[Path] | None,
        sweep: int,
    ) -> tuple[list[Path], StopReason, int]:
        """One pass of sequential Monte Carlo; with a ``reference`` lineage (particle Gibbs) that lineage holds
        one of the ``n`` places at every step and the others are drawn and resampled around it."""
        config = self.config
        free = config.n - (1 if reference else 0)
        stop: StopReason = "completed"
        rounds = 0
        population: list[Path] = []
        try:
            population = await self.extend(ctx, question, None, free, parent) if free else []
            if reference:
                population.append(reference[0])
            scored: set[int] = {id(p) for p in reference or ()}
            while population:
                fresh = list({id(p): p for p in population if id(p) not in scored}.values())
                refused = await self.score(ctx, question, fresh, rewarder)
                scored.update(id(p) for p in fresh)
                if refused:
                    stop = "budget"
                    break
                if all(p.final for p in population):
                    break
                rounds += 1
                probabilities = weights([p.reward for p in population], config.resample_temperature)
                drawn = resample(probabilities, free, rng, config.resampling)
                copies = Counter(drawn)
                survivors = {id(population[i]) for i in copies} | {id(p) for p in reference or ()}
                for index, path in enumerate(population):
                    if id(path) not in survivors:
                        self.prune(ctx, path, f"not resampled (weight {probabilities[index]:.3f})")
                ctx.record(
                    "select",
                    sorted({population[i].node_id for i in copies}) or [parent],
                    strategy=self.name,
                    data={
                        "sweep": sweep,
                        "round": rounds,
                        "weights": [round(w, 4) for w in probabilities],
                        "copies": {str(population[i].node_id): c for i, c in sorted(copies.items())},
                    },
                )
                kept = [population[i] for i in drawn if population[i].final]
                growing = [(population[i], c) for i, c in sorted(copies.items()) if not population[i].final]
                grown, refused = await self.extend_all(ctx, question, growing, parent)
                population = kept + grown
                if reference:  # the reference's next step, as it was drawn in the sweep it came from
                    population.append(reference[min(rounds, len(reference) - 1)])
                if refused:
                    stop = "budget"
                    population += [p for p, _ in growing]
                    break
        except BudgetExhausted:
            stop = "budget"
        return population, stop, rounds


def _lineage(path: Path) -> list[Path]:
    """``path`` and its ancestors, root first: the reference trajectory of the next Gibbs sweep."""
    lineage = []
    node: Path | None = path
    while node is not None:
        lineage.append(node)
        node = node.parent
    return lineage[::-1]
