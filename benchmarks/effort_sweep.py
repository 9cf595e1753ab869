"""Where adaptive self-consistency and ``auto`` pay, and where they do not: a sweep on the simulated mix.

``effort_curve.py`` measures one point per effort level. This sweep traces the curves behind two targets of
issue 12, on the same simulated model and the same mix (75% easy questions, each sample right with p = 0.9;
25% hard, p = 0.3 with five wrong answers at 14% each), and on a second, clearly labelled sensitivity mix
(90% easy, 10% hard) that replaces nothing:

* **Adaptive against fixed self-consistency** (the Adaptive-Consistency comparison, Aggarwal et al., 2023,
  which uses the same Beta rule at 0.95 against fixed SC@40): fixed ``sc:n=N`` against
  ``sc-adaptive:n=N,confidence=C`` for N in 16, 32, 40 and C in 0.9, 0.95, 0.99 (thinkloop's rounds of two
  after a first round of four), and at 0.95 one sample at a time (``parallel=1``, the paper's schedule):
  samples drawn, accuracy, the samples ratio and the accuracy change with its standard error, paired on
  the same questions (and the first draws: a request's samples come from one seeded stream, so fixed SC@N's
  one request and the adaptive rule's first round of four share them; later rounds are fresh draws).
* **``auto`` without a checker**: its curve over ``probe`` (first step), ``growth`` and ``max_samples`` (cap),
  against the best *fixed* strategy of the sweep (fixed SC@N at its most accurate N): the cheapest ``auto``
  setting that reaches that accuracy, and its tokens over the fixed strategy's.

Each config runs every question of every seed (``--seeds``; a seed picks which questions are hard and every
draw) through the real strategies on a fresh :class:`SimulatedBackend`. Seed 0 is the committed
``effort_curve.py`` run, so its rows match the README's table. Writes ``sweep.json`` (every config, per
mix, pooled over seeds) and ``sweep.md`` (the tables) under ``--out``.

Run: ``python benchmarks/effort_sweep.py`` (a few minutes on two cores; ``--seeds 0`` for one minute).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from thinkloop.bench.simulated import (
    MIXED_TIERS,
    WIDE_WRONG,
    SimulatedBackend,
    Spread,
    mixed_spreads,
    simulated_dataset,
)
from thinkloop.strategies.auto import AutoConfig
from thinkloop.strategies.registry import build_strategy
from thinkloop.verifiers.equivalence import answers_equivalent

MIXES: dict[str, tuple[tuple[float, Spread], ...]] = {
    "committed (75% easy)": MIXED_TIERS,
    "sensitivity (90% easy)": ((0.9, Spread(p=0.9)), (0.1, Spread(p=0.3, wrong=WIDE_WRONG))),
}
CAPS = (16, 32, 40)
CONFIDENCES = (0.9, 0.95, 0.99)
AUTO_PROBES = (2, 3, 4)
AUTO_GROWTHS = (1.5, 2.0)
AUTO_CAPS = (8, 16, 32, 64)


def sc_specs() -> list[str]:
    specs = []
    for n in CAPS:
        specs.append(f"sc:n={n}")
        specs += [f"sc-adaptive:n={n},confidence={c}" for c in CONFIDENCES]
        specs.append(f"sc-adaptive:n={n},confidence=0.95,parallel=1")
    return specs


def auto_spec(probe: int, growth: float, cap: int) -> str:
    return f"auto:probe={probe},growth={growth},max_samples={cap}"


def auto_specs() -> list[str]:
    return [auto_spec(p, g, m) for p in AUTO_PROBES for g in AUTO_GROWTHS for m in AUTO_CAPS]


_AUTO = AutoConfig()
DEFAULT_AUTO = auto_spec(_AUTO.probe, _AUTO.growth, _AUTO.max_samples)
"""``auto`` as it ships (so the table marks it)."""


@dataclass
class Row:
    """Per-question outcomes of one config, in question order over every seed (paired across configs)."""

    correct: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    easy: list[bool] = field(default_factory=list)

    def mean(self, values: list[int], easy: bool | None = None) -> float:
        picked = [v for v, e in zip(values, self.easy, strict=True) if easy is None or e == easy]
        return math.fsum(picked) / len(picked) if picked else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "n": len(self.correct),
            "accuracy": self.mean(self.correct),
            "tokens": self.mean(self.tokens),
            "samples": self.mean(self.samples),
            "easy_samples": self.mean(self.samples, True),
            "hard_samples": self.mean(self.samples, False),
            "easy_accuracy": self.mean(self.correct, True),
            "hard_accuracy": self.mean(self.correct, False),
        }


def paired_delta(a: Row, b: Row) -> tuple[float, float]:
    """Accuracy of ``a`` minus ``b`` in points, and its standard error, over the same questions and draws."""
    diffs = [x - y for x, y in zip(a.correct, b.correct, strict=True)]
    n = len(diffs)
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return 100 * mean, 100 * math.sqrt(var / n)


async def measure(
    specs: list[str], tiers: tuple[tuple[float, Spread], ...], questions: int, seeds: list[int], reply_words: int
) -> dict[str, Row]:
    rows = {spec: Row() for spec in specs}
    for seed in seeds:
        dataset = simulated_dataset(questions, name="simulated-mixed")
        spreads = mixed_spreads([p.question for p in dataset.problems], tiers, seed=seed)
        for spec in specs:
            backend = SimulatedBackend.for_dataset(dataset, spreads=spreads, seed=seed, reply_words=reply_words)
            strategy, row = build_strategy(spec), rows[spec]
            for problem in dataset.problems:
                result = await strategy.run(problem.question, backend=backend)
                row.correct.append(int(result.answer is not None and answers_equivalent(result.answer, problem.answer)))
                row.tokens.append(result.usage.total_tokens)
                row.samples.append(len(result.attempts))
                row.easy.append(spreads[problem.question].p >= 0.5)
    return rows


def sc_table(rows: dict[str, Row]) -> tuple[list[dict[str, object]], list[str]]:
    records, lines = (
        [],
        [
            "| cap N | stopping rule | samples / q (easy / hard) | accuracy | fixed SC@N samples / adaptive | "
            "Δ accuracy vs SC@N, points (± SE) | 3× fewer at ≤ 1 point less |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ],
    )
    for n in CAPS:
        fixed = rows[f"sc:n={n}"]
        f = fixed.summary()
        lines.append(f"| {n} | fixed | {f['samples']:.1f} | {100 * f['accuracy']:.1f}% | 1 | 0 | |")
        for spec in [s for s in rows if s.startswith(f"sc-adaptive:n={n},")]:
            s = rows[spec].summary()
            ratio = f["samples"] / s["samples"]
            delta, se = paired_delta(rows[spec], fixed)
            met = ratio >= 3 and delta >= -1.0
            rule = spec.split(",", 1)[1].replace("confidence=", "Beta > ").replace(",parallel=1", ", one at a time")
            records.append(
                {"spec": spec, "cap": n, **s, "ratio": ratio, "delta_points": delta, "delta_se": se, "met": met}
            )
            lines.append(
                f"| {n} | {rule} | {s['samples']:.1f} ({s['easy_samples']:.1f} / {s['hard_samples']:.1f}) "
                f"| {100 * s['accuracy']:.1f}% | {ratio:.2f}× | {delta:+.1f} (± {se:.1f}) | "
                f"{'yes' if met else 'no'} |"
            )
    return records, lines


def auto_table(rows: dict[str, Row]) -> tuple[dict[str, object], list[str]]:
    fixed = {spec: rows[spec].summary() for spec in (f"sc:n={n}" for n in CAPS)}
    best = max(fixed, key=lambda spec: (fixed[spec]["accuracy"], -fixed[spec]["tokens"]))
    target = fixed[best]
    autos = {spec: rows[spec].summary() for spec in rows if spec.startswith("auto:")}
    reaching = [spec for spec in autos if autos[spec]["accuracy"] >= target["accuracy"]]
    cheapest = min(reaching, key=lambda spec: autos[spec]["tokens"]) if reaching else None
    front = sorted(
        (
            s
            for s in autos
            if not any(
                autos[o]["accuracy"] >= autos[s]["accuracy"] and autos[o]["tokens"] < autos[s]["tokens"] for o in autos
            )
        ),
        key=lambda s: autos[s]["tokens"],
    )
    lines = [
        f"Best fixed strategy: `{best}`, {100 * target['accuracy']:.1f}% at {target['tokens']:,.0f} tokens / q.",
        "",
        "| auto setting | accuracy | tokens / q | samples / q (easy / hard) | tokens / best fixed | Δ vs best fixed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in front:
        a = autos[spec]
        delta, se = paired_delta(rows[spec], rows[best])
        mark = " (the default)" if spec == DEFAULT_AUTO else ""
        lines.append(
            f"| `{spec.removeprefix('auto:')}`{mark} | {100 * a['accuracy']:.1f}% | {a['tokens']:,.0f} | "
            f"{a['samples']:.1f} ({a['easy_samples']:.1f} / {a['hard_samples']:.1f}) | "
            f"{a['tokens'] / target['tokens']:.2f}× | {delta:+.1f} (± {se:.1f}) |"
        )
    result = {
        "best_fixed": best,
        "best_fixed_accuracy": target["accuracy"],
        "best_fixed_tokens": target["tokens"],
        "cheapest_auto_reaching_it": cheapest,
        "its_tokens_over_best_fixed": autos[cheapest]["tokens"] / target["tokens"] if cheapest else None,
        "reached_at_half_tokens": bool(cheapest) and autos[cheapest]["tokens"] <= 0.5 * target["tokens"],
        "pareto_front": front,
        "configs": autos,
        "fixed": fixed,
        "default": DEFAULT_AUTO,
        "default_on_front": DEFAULT_AUTO in front,
    }
    lines.append("")
    lines.append(
        "Cheapest `auto` at the best fixed accuracy: "
        + (
            f"`{cheapest}`, {autos[cheapest]['tokens']:,.0f} tokens / q = "
            f"{result['its_tokens_over_best_fixed']:.2f}× `{best}`."
            if cheapest
            else "none."
        )
    )
    return result, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated; each a fresh mix and fresh draws")
    parser.add_argument("--reply-words", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/effort"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    specs = sc_specs() + auto_specs()
    report: dict[str, object] = {"questions": args.questions, "seeds": seeds, "reply_words": args.reply_words}
    text = [
        f"# Effort sweep: {args.questions} questions × seeds {args.seeds}, replies of ~{args.reply_words} words",
        "",
        "Written by `python benchmarks/effort_sweep.py`; Δ is paired over the same questions (± one standard error).",
        "",
    ]
    for mix, tiers in MIXES.items():
        rows = anyio.run(measure, specs, tiers, args.questions, seeds, args.reply_words)
        sc_records, sc_lines = sc_table(rows)
        auto_result, auto_lines = auto_table(rows)
        report[mix] = {
            "tiers": [{"share": s, "p": t.p, "wrong": t.wrong} for s, t in tiers],
            "self_consistency": sc_records,
            "auto": auto_result,
        }
        text += [
            f"## Mix: {mix}",
            "",
            "### Adaptive against fixed self-consistency",
            "",
            *sc_lines,
            "",
            "### `auto` without a checker (its Pareto front over probe, growth, cap)",
            "",
            *auto_lines,
            "",
        ]
        print("\n".join(text[-len(sc_lines) - len(auto_lines) - 8 :]), flush=True)
    (args.out / "sweep.json").write_text(json.dumps(report, indent=1, default=list) + "\n")
    (args.out / "sweep.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
