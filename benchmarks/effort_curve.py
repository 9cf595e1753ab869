"""Accuracy against tokens for every effort level and ``auto``, on a simulated mix of easy and hard questions.

The simulated model (:class:`thinkloop.bench.simulated.SimulatedBackend`) answers each question from its own
spread: by default three quarters are easy (each sample right with probability 0.9) and a quarter hard
(right with probability 0.3, else one of five wrong answers at 14% each), assigned by ``--seed``. Every reply
carries ``--reply-words`` words of reasoning, so tokens per question look like a model that thinks.

For each config (``effort:none`` … ``effort:high``, ``effort:auto``, and fixed ``sc:n=16`` and adaptive
``sc-adaptive:n=16`` for the self-consistency comparison) it runs the same questions through
``thinkloop.bench.run_benchmark`` on a fresh, identically seeded backend, then writes under ``--out``:
``results.jsonl`` (one record per config and question), ``table.md`` (``thinkloop bench report``'s table),
``summary.json`` (accuracy, mean tokens and samples per config, easy and hard apart, and the targets
checked) and ``accuracy-vs-tokens.png`` (one point per level and ``auto``, and fixed SC@16 for reference; the Pareto
front starred).

Run: ``python benchmarks/effort_curve.py`` (about a minute; ``--questions 60`` for a smoke run). Results are
resumed from ``results.jsonl``: delete it to measure again.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import anyio

from thinkloop.bench import load_summaries, run_benchmark
from thinkloop.bench.plots import plot_tradeoff
from thinkloop.bench.report import render
from thinkloop.bench.simulated import MIXED_TIERS, SimulatedBackend, mixed_spreads, simulated_dataset
from thinkloop.bench.store import read_records
from thinkloop.strategies.effort import EFFORTS

LEVELS = [f"effort:{level}" for level in EFFORTS]
REFERENCES = ["sc:n=16", "sc-adaptive:n=16"]
DATASET = "simulated-mixed"


def _tier(spread_p: float) -> str:
    return "easy" if spread_p >= 0.5 else "hard"


async def _measure(specs: list[str], out: Path, questions: int, seed: int, reply_words: int) -> dict[str, str]:
    dataset = simulated_dataset(questions, name=DATASET)
    spreads = mixed_spreads([p.question for p in dataset.problems], seed=seed)
    for spec in specs:  # a fresh backend per config: each sees the same draws whatever ran before it
        backend = SimulatedBackend.for_dataset(dataset, spreads=spreads, seed=seed, reply_words=reply_words)
        await run_benchmark([dataset], [spec], [backend], out / "results.jsonl", concurrency=8)
    return {p.id: _tier(spreads[p.question].p) for p in dataset.problems}


def _per_tier(out: Path, tiers: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy, mean tokens and mean samples per strategy, for easy and hard questions apart."""
    sums: dict[str, dict[str, list[float]]] = {}
    for record in read_records(out / "results.jsonl"):
        if record.status != "done" or record.id not in tiers:
            continue
        row = sums.setdefault(record.strategy, {}).setdefault(tiers[record.id], [0, 0, 0, 0])
        row[0] += 1
        row[1] += bool(record.correct)
        row[2] += (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        row[3] += record.k or 0
    return {
        strategy: {tier: {"n": n, "accuracy": right / n, "tokens": tokens / n, "samples": k / n}
                   for tier, (n, right, tokens, k) in by_tier.items()}
        for strategy, by_tier in sums.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reply-words", type=int, default=150, help="words of reasoning in every reply")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/effort"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = LEVELS + REFERENCES
    tiers = anyio.run(_measure, specs, args.out, args.questions, args.seed, args.reply_words)
    summaries = {s.strategy: s for s in load_summaries(args.out / "results.jsonl") if s.dataset == DATASET}
    rows = [summaries[spec] for spec in specs]
    (args.out / "table.md").write_text(render(rows, "markdown"))
    plotted = [summaries[spec] for spec in [*LEVELS, "sc:n=16"]]  # fixed SC@16: the old table's high
    plot_tradeoff(plotted, args.out / "accuracy-vs-tokens.png",
                  title="effort levels on easy+hard questions (★ Pareto front)")

    def point(spec: str) -> dict[str, float]:
        s = summaries[spec]
        return {"accuracy": s.accuracy or 0.0, "ci_low": s.ci_low or 0.0, "ci_high": s.ci_high or 0.0,
                "tokens": s.mean_tokens, "samples": s.mean_k or 0.0, "calls": s.mean_calls}

    points = {spec: point(spec) for spec in specs}
    fixed = [spec for spec in specs if spec != "effort:auto"]
    best = max(fixed, key=lambda spec: (points[spec]["accuracy"], -points[spec]["tokens"]))
    auto = points["effort:auto"]
    same_tokens = [spec for spec in fixed if points[spec]["tokens"] >= auto["tokens"]]
    sc16, adaptive16 = points["sc:n=16"], points["sc-adaptive:n=16"]
    targets = {
        "best_fixed": best,
        "auto_accuracy_minus_best": auto["accuracy"] - points[best]["accuracy"],
        "auto_tokens_over_best": auto["tokens"] / points[best]["tokens"],
        "auto_reaches_best_at_half_tokens": auto["accuracy"] >= points[best]["accuracy"]
        and auto["tokens"] <= 0.5 * points[best]["tokens"],
        "auto_beats_every_fixed_level_costing_as_much": all(
            auto["accuracy"] > points[spec]["accuracy"] for spec in same_tokens),
        "sc16_samples_over_adaptive": sc16["samples"] / adaptive16["samples"],
        "adaptive_accuracy_points_below_sc16": 100 * (sc16["accuracy"] - adaptive16["accuracy"]),
        "adaptive_3x_fewer_samples_within_1_point": sc16["samples"] >= 3 * adaptive16["samples"]
        and 100 * (sc16["accuracy"] - adaptive16["accuracy"]) <= 1.0,
    }
    summary = {
        "questions": args.questions, "seed": args.seed, "reply_words": args.reply_words,
        "tiers": [{"share": share, "p": spread.p, "wrong": spread.wrong} for share, spread in MIXED_TIERS],
        "points": points, "by_difficulty": _per_tier(args.out, tiers), "targets": targets,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=list) + "\n")
    for spec in specs:
        p = points[spec]
        print(f"{spec:20} accuracy {100 * p['accuracy']:5.1f}% [{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]"
              f"  tokens/q {p['tokens']:7.0f}  samples/q {p['samples']:5.2f}")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                      for k, v in targets.items()}))


if __name__ == "__main__":
    main()
