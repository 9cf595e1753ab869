"""Accuracy against tokens for every effort level and ``auto``, on a simulated mix of easy and hard questions.

The simulated model (:class:`thinkloop.bench.simulated.SimulatedBackend`) answers each question from its own
spread: by default three quarters are easy (each sample right with probability 0.9) and a quarter hard
(right with probability 0.3, else one of five wrong answers at 14% each), assigned by ``--seed``. Every reply
carries ``--reply-words`` words of reasoning, so tokens per question look like a model that thinks.

For each config (``effort:none`` … ``effort:high``, ``effort:auto``, fixed ``sc:n=16`` and adaptive
``sc-adaptive:n=16`` for the self-consistency comparison, and fixed ``sc:n=40``, the most accurate fixed
strategy of ``effort_sweep.py`` and the Adaptive-Consistency paper's baseline) it runs the same questions through
``thinkloop.bench.run_benchmark`` on a fresh, identically seeded backend, then writes under ``--out``:
``results.jsonl`` (one record per config and question), ``table.md`` (``thinkloop bench report``'s table),
``summary.json`` (accuracy, mean tokens and samples per config, easy and hard apart, and the targets
checked) and ``accuracy-vs-tokens.png`` (one point per level and ``auto``, and fixed SC@16 and SC@40 for
reference; the Pareto front starred). ``effort_sweep.py`` traces the curves behind these points.

Then it runs ``effort:none``, ``effort:high``, ``effort:auto``, ``bon:n=8`` and ``bon:n=16`` again with a
checker of known error rates given to every run (:class:`SimulatedVerifier`, by default accepting a right
answer 95% of the time and a wrong one 5%, like an imperfect program check): ``checked.csv`` (one row per
config and question) and ``accuracy-vs-tokens-with-checker.png``.

Run: ``python benchmarks/effort_curve.py`` (about a minute; ``--questions 60`` for a smoke run). Results are
resumed from ``results.jsonl``: delete it to measure again.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import anyio

from thinkloop.bench import load_summaries, run_benchmark
from thinkloop.bench.plots import plot_tradeoff
from thinkloop.bench.report import ConfigSummary, render, wilson_interval
from thinkloop.bench.simulated import (
    MIXED_TIERS,
    SimulatedBackend,
    SimulatedVerifier,
    mixed_spreads,
    simulated_dataset,
)
from thinkloop.bench.store import read_records
from thinkloop.strategies.effort import EFFORTS

LEVELS = [f"effort:{level}" for level in EFFORTS]
CHECKED = ["effort:none", "effort:high", "effort:auto", "bon:n=8", "bon:n=16"]
"""Configs run again with a checker (:class:`SimulatedVerifier`): ``auto`` and best-of-n use it."""
REFERENCES = ["sc:n=16", "sc-adaptive:n=16", "sc:n=40"]
FIXED_SC = ["sc:n=16", "sc:n=40"]
"""The non-adaptive references: ``auto`` is measured against the most accurate of them too."""
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


async def _checked(
    out: Path, questions: int, seed: int, reply_words: int, recall: float, false_accept: float
) -> dict[str, dict[str, dict[str, float]]]:
    """Every :data:`CHECKED` config with a checker of known error rates given to each run; one CSV row per
    config and question, and the means per config, overall and by difficulty."""
    from thinkloop.strategies.registry import build_strategy
    from thinkloop.verifiers.equivalence import answers_equivalent

    dataset = simulated_dataset(questions, name=DATASET)
    spreads = mixed_spreads([p.question for p in dataset.problems], seed=seed)
    gold = {p.question: p.answer for p in dataset.problems}
    rows = ["strategy,id,difficulty,correct,tokens,samples,checks"]
    sums: dict[str, dict[str, list[float]]] = {}
    for spec in CHECKED:
        backend = SimulatedBackend.for_dataset(dataset, spreads=spreads, seed=seed, reply_words=reply_words)
        verifier = SimulatedVerifier(gold, recall=recall, false_accept=false_accept, seed=seed)
        strategy = build_strategy(spec)
        for problem in dataset.problems:
            before = verifier.calls
            result = await strategy.run(problem.question, backend=backend, verifier=verifier)
            right = result.answer is not None and answers_equivalent(result.answer, problem.answer)
            tier = _tier(spreads[problem.question].p)
            samples = len(result.attempts) or result.usage.calls
            tokens = result.usage.total_tokens
            rows.append(f"{spec},{problem.id},{tier},{int(right)},{tokens},{samples},{verifier.calls - before}")
            for key in (tier, "all"):
                row = sums.setdefault(spec, {}).setdefault(key, [0, 0, 0, 0, 0])
                for index, value in enumerate((1, right, tokens, samples, verifier.calls - before)):
                    row[index] += value
    (out / "checked.csv").write_text("\n".join(rows) + "\n")
    return {
        spec: {
            key: {"n": n, "accuracy": right / n, "tokens": tokens / n, "samples": k / n, "checks": c / n}
            for key, (n, right, tokens, k, c) in by_key.items()
        }
        for spec, by_key in sums.items()
    }


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
        strategy: {
            tier: {"n": n, "accuracy": right / n, "tokens": tokens / n, "samples": k / n}
            for tier, (n, right, tokens, k) in by_tier.items()
        }
        for strategy, by_tier in sums.items()
    }


def plot_levels(summaries: dict[str, ConfigSummary], path: Path) -> Path:
    """The committed plot without a checker (a test regenerates it from ``results.jsonl``)."""
    return plot_tradeoff(
        [summaries[spec] for spec in [*LEVELS, *FIXED_SC]],
        path,
        title="effort levels, easy+hard questions (★ Pareto front)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reply-words", type=int, default=150, help="words of reasoning in every reply")
    parser.add_argument("--recall", type=float, default=0.95, help="the checker accepts a right answer this often")
    parser.add_argument("--false-accept", type=float, default=0.05, help="... and a wrong one this often")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/effort"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = LEVELS + REFERENCES
    tiers = anyio.run(_measure, specs, args.out, args.questions, args.seed, args.reply_words)
    summaries = {s.strategy: s for s in load_summaries(args.out / "results.jsonl") if s.dataset == DATASET}
    rows = [summaries[spec] for spec in specs]
    (args.out / "table.md").write_text(render(rows, "markdown"))

    def point(spec: str) -> dict[str, float]:
        s = summaries[spec]
        return {
            "accuracy": s.accuracy or 0.0,
            "ci_low": s.ci_low or 0.0,
            "ci_high": s.ci_high or 0.0,
            "tokens": s.mean_tokens,
            "samples": s.mean_k or 0.0,
            "calls": s.mean_calls,
        }

    points = {spec: point(spec) for spec in specs}
    fixed = [spec for spec in specs if spec != "effort:auto"]
    best = max(fixed, key=lambda spec: (points[spec]["accuracy"], -points[spec]["tokens"]))
    auto = points["effort:auto"]
    same_tokens = [spec for spec in fixed if points[spec]["tokens"] >= auto["tokens"]]
    sc16, adaptive16 = points["sc:n=16"], points["sc-adaptive:n=16"]
    best_sc = max(FIXED_SC, key=lambda spec: (points[spec]["accuracy"], -points[spec]["tokens"]))
    targets = {
        "best_fixed": best,
        "auto_accuracy_minus_best": auto["accuracy"] - points[best]["accuracy"],
        "auto_tokens_over_best": auto["tokens"] / points[best]["tokens"],
        "auto_reaches_best_at_half_tokens": auto["accuracy"] >= points[best]["accuracy"]
        and auto["tokens"] <= 0.5 * points[best]["tokens"],
        # None when no config costs as much as auto: then there is nothing to beat at the same tokens
        "auto_beats_every_fixed_level_costing_as_much": all(
            auto["accuracy"] > points[spec]["accuracy"] for spec in same_tokens
        )
        if same_tokens
        else None,
        "best_fixed_sc": best_sc,
        "auto_accuracy_minus_best_fixed_sc": auto["accuracy"] - points[best_sc]["accuracy"],
        "auto_tokens_over_best_fixed_sc": auto["tokens"] / points[best_sc]["tokens"],
        "auto_reaches_best_fixed_sc_at_half_tokens": auto["accuracy"] >= points[best_sc]["accuracy"]
        and auto["tokens"] <= 0.5 * points[best_sc]["tokens"],
        "auto_accuracy_minus_fixed_sc16": auto["accuracy"] - sc16["accuracy"],
        "auto_tokens_over_fixed_sc16": auto["tokens"] / sc16["tokens"],
        "sc16_samples_over_adaptive": sc16["samples"] / adaptive16["samples"],
        "adaptive_accuracy_points_below_sc16": 100 * (sc16["accuracy"] - adaptive16["accuracy"]),
        "adaptive_3x_fewer_samples_within_1_point": sc16["samples"] >= 3 * adaptive16["samples"]
        and 100 * (sc16["accuracy"] - adaptive16["accuracy"]) <= 1.0,
    }
    by_difficulty = _per_tier(args.out, tiers)
    targets["sc16_samples_over_adaptive_on_easy_questions"] = 16 / by_difficulty["sc-adaptive:n=16"]["easy"]["samples"]
    checked = anyio.run(_checked, args.out, args.questions, args.seed, args.reply_words, args.recall, args.false_accept)
    best_checked = max(
        (spec for spec in CHECKED if spec != "effort:auto"),
        key=lambda spec: (checked[spec]["all"]["accuracy"], -checked[spec]["all"]["tokens"]),
    )
    auto_checked, best_row = checked["effort:auto"]["all"], checked[best_checked]["all"]
    targets |= {
        "with_checker_best_fixed": best_checked,
        "with_checker_auto_accuracy_minus_best": auto_checked["accuracy"] - best_row["accuracy"],
        "with_checker_auto_tokens_over_best": auto_checked["tokens"] / best_row["tokens"],
        "with_checker_auto_tokens_over_high": auto_checked["tokens"] / checked["effort:high"]["all"]["tokens"],
        "with_checker_auto_accuracy_minus_high": auto_checked["accuracy"] - checked["effort:high"]["all"]["accuracy"],
    }

    # Two plots: every level and auto without a checker, with fixed SC@16 (the old table's high) and SC@40; and every
    # config run with a checker (auto and best-of-n use it; the other levels do not read it).
    def checked_point(spec: str) -> ConfigSummary:
        row = checked[spec]["all"]
        n, correct = int(row["n"]), round(row["accuracy"] * row["n"])
        low, high = wilson_interval(correct, n)
        return replace(
            summaries["effort:auto"],
            strategy=spec,
            spec=spec,
            model="simulated(mixed) + checker",
            n=n,
            correct=correct,
            accuracy=row["accuracy"],
            ci_low=low,
            ci_high=high,
            mean_tokens=row["tokens"],
            mean_k=row["samples"],
        )

    plot_levels(summaries, args.out / "accuracy-vs-tokens.png")
    plot_tradeoff(
        [checked_point(spec) for spec in CHECKED],
        args.out / "accuracy-vs-tokens-with-checker.png",
        title=f"with a checker ({args.recall:g} recall, {args.false_accept:g} false accepts; ★ Pareto)",
    )
    summary = {
        "questions": args.questions,
        "seed": args.seed,
        "reply_words": args.reply_words,
        "tiers": [{"share": share, "p": spread.p, "wrong": spread.wrong} for share, spread in MIXED_TIERS],
        "points": points,
        "by_difficulty": by_difficulty,
        "with_checker": {"recall": args.recall, "false_accept": args.false_accept, "configs": checked},
        "targets": targets,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=list) + "\n")
    for spec in specs:
        p = points[spec]
        print(
            f"{spec:20} accuracy {100 * p['accuracy']:5.1f}% [{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]"
            f"  tokens/q {p['tokens']:7.0f}  samples/q {p['samples']:5.2f}"
        )
    for spec in CHECKED:
        row = checked[spec]["all"]
        print(
            f"{spec + ' +check':20} accuracy {100 * row['accuracy']:5.1f}%  tokens/q {row['tokens']:7.0f}  "
            f"samples/q {row['samples']:5.2f}  checks/q {row['checks']:5.2f}"
        )
    print(
        json.dumps({k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in targets.items()})
    )


if __name__ == "__main__":
    main()
