"""The new methods against self-consistency and best-of-n at matched token budgets, on simulated models.

Two simulated settings of mixed difficulty (``--seed`` decides which questions are hard):

- **confidence** (:class:`~thinkloop.bench.simulated_search.ConfidentSimulatedBackend`): three quarters of
  the questions easy (each sample right with probability 0.9), a quarter hard (0.3, five wrong answers at
  14% each). Each trace carries ~64 tokens whose log-probabilities track correctness: a trace's latent
  confidence is N(0.8, 0.1) when right and N(0.6, 0.1) when wrong, each token's probability that plus
  N(0, 0.15). Compared: ``sc`` against DeepConf offline (keep 90% / 50%) and online (warm-up 4, consensus
  0.95; whole traces, and in 16-token pieces with early stops).
- **steps** (:class:`~thinkloop.bench.simulated_search.SimulatedStepBackend` and
  :class:`~thinkloop.bench.simulated_search.SimulatedPRM`): solutions of 4 steps of ~22 tokens; each step
  of an on-track path derails with probability 0.05 (easy, three quarters) or 0.35 (hard); a derailed path
  ends wrong. The PRM scores a prefix ``sigmoid(±1 + N(0, 1))`` (``--prm-noise``). Compared at N = 4, 8, 16:
  ``sc``, ``bon`` (the PRM's last-step reward of each whole solution), ``beam`` and ``dvts``
  (``beam_width`` 4) and ``particles``.

- **cascade**: the confidence setting's answers (without logprobs) as the cheap model; a strong model right
  97% (easy) and 50% (hard). ``sc`` on the strong model alone against ``cascade`` (3 cheap samples; the
  strong model's vote only when they disagree), with the share of questions escalated and the strong model's
  tokens per question.

For each config it prints and writes under ``--out``: accuracy with its 95% Wilson interval, mean
completion and total tokens per question, and calls, easy and hard apart (``summary.json``, ``table.md``,
``accuracy-vs-tokens.png``).

Run: ``python benchmarks/search_and_confidence.py`` (well under a minute of CPU at 300 questions).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from thinkloop.bench.report import wilson_interval
from thinkloop.bench.simulated import MIXED_TIERS, SimulatedBackend, Spread, mixed_spreads, simulated_dataset
from thinkloop.bench.simulated_search import ConfidentSimulatedBackend, SimulatedPRM, SimulatedStepBackend
from thinkloop.runtime.engine import Engine
from thinkloop.strategies.base import Strategy
from thinkloop.strategies.cascade import Cascade
from thinkloop.strategies.registry import build_strategy
from thinkloop.verifiers.equivalence import answers_equivalent

CONFIDENCE = [
    "sc:n=8",
    "sc:n=16",
    "deepconf:n=16",
    "deepconf:n=16,keep_percent=50",
    "deepconf-online:n=16,warmup=4",
    "deepconf-online:n=16,warmup=4,chunk_tokens=16,window=16",
]
STEPS = [
    f"{name}:n={n}" + (",beam_width=4" if name in ("beam", "dvts") else "")
    for n in (4, 8, 16)
    for name in ("sc", "bon", "beam", "dvts", "particles")
]


async def _run(
    strategy_for: Callable[[], Strategy], backend_for: Callable[[], Any], dataset: Any, hard: set[str]
) -> dict[str, Any]:
    backend = backend_for()
    engine = Engine(backend)
    rows: list[tuple[bool, bool, int, int, int]] = []
    escalated: list[tuple[bool, int]] = []
    limiter = anyio.CapacityLimiter(16)

    async def one(problem: Any) -> None:
        async with limiter:
            result = await strategy_for().run(problem.question, engine=engine)
        right = result.answer is not None and answers_equivalent(result.answer, problem.answer)
        usage = result.usage
        rows.append((right, problem.question in hard, usage.completion_tokens, usage.total_tokens, usage.calls))
        if result.data and "escalated" in result.data:
            escalated.append((bool(result.data["escalated"]), int(result.data.get("strong_tokens") or 0)))

    async with anyio.create_task_group() as group:
        for problem in dataset.problems:
            group.start_soon(one, problem)
    summary = _summary(rows)
    if escalated:
        summary["escalated"] = sum(e for e, _ in escalated) / len(escalated)
        summary["strong_tokens"] = sum(t for _, t in escalated) / len(escalated)
    return summary


def _summary(rows: list[tuple[bool, bool, int, int, int]]) -> dict[str, Any]:
    def part(selected: list[tuple[bool, bool, int, int, int]]) -> dict[str, Any]:
        n = len(selected)
        right = sum(r[0] for r in selected)
        low, high = wilson_interval(right, n)
        return {
            "n": n,
            "accuracy": right / n if n else None,
            "ci": [low, high],
            "completion_tokens": sum(r[2] for r in selected) / n if n else None,
            "total_tokens": sum(r[3] for r in selected) / n if n else None,
            "calls": sum(r[4] for r in selected) / n if n else None,
        }

    return {"all": part(rows), "easy": part([r for r in rows if not r[1]]), "hard": part([r for r in rows if r[1]])}


def _stronger(spreads: dict[str, Spread]) -> dict[str, Spread]:
    """The strong model of the cascade setting: easy questions right 97%, hard ones 50%."""
    return {q: Spread(p=0.97 if s.p >= 0.5 else 0.5, wrong=s.wrong) for q, s in spreads.items()}


def _cascade_configs(gold: dict[str, str], spreads: dict[str, Spread], seed: int) -> list[tuple[str, Any]]:
    """Self-consistency on the strong model alone, against a cascade from the cheap one (the mix's model)."""

    def cascade(n: int, strong_n: int, agreement: float = 1.0) -> Strategy:
        cheap = SimulatedBackend(gold, spreads=spreads, seed=seed + 1, reply_words=60, name="cheap")
        return Cascade(cheap=cheap, n=n, strong_n=strong_n, agreement=agreement)

    return [
        ("sc:n=3 (strong only)", lambda: build_strategy("sc:n=3")),
        ("sc:n=5 (strong only)", lambda: build_strategy("sc:n=5")),
        ("cascade:n=3,strong_n=3", lambda: cascade(3, 3)),
        ("cascade:n=3,strong_n=5", lambda: cascade(3, 5)),
        ("cascade:n=3,strong_n=3,agreement=0.6", lambda: cascade(3, 3, 0.6)),
    ]


def _row(setting: str, spec: str, s: dict[str, Any]) -> str:
    a = s["all"]
    name = f"`{spec}`"
    if "escalated" in s:
        name += f" (escalated {100 * s['escalated']:.0f}%, strong-model tokens/q {s['strong_tokens']:.0f})"
    return (
        f"| {setting} | {name} | {100 * a['accuracy']:.1f}% [{100 * a['ci'][0]:.1f}, {100 * a['ci'][1]:.1f}] "
        f"| {100 * s['easy']['accuracy']:.1f}% | {100 * s['hard']['accuracy']:.1f}% "
        f"| {a['completion_tokens']:.0f} | {a['total_tokens']:.0f} | {a['calls']:.1f} |"
    )


async def main(args: argparse.Namespace) -> None:
    dataset = simulated_dataset(args.questions, name="simulated-mixed")
    questions = [p.question for p in dataset.problems]
    spreads = mixed_spreads(questions, MIXED_TIERS, seed=args.seed)
    hard = {q for q, s in spreads.items() if s.p < 0.5}
    gold = {p.question: p.answer for p in dataset.problems}
    summary: dict[str, dict[str, Any]] = {"confidence": {}, "steps": {}}
    lines = [
        "| setting | config | accuracy (95% CI) | easy | hard | completion tokens/q | total tokens/q | calls/q |",
        "|---|---|---|---|---|---|---|---|",
    ]
    started = time.perf_counter()
    for spec in CONFIDENCE:
        result = await _run(
            lambda spec=spec: build_strategy(spec),
            lambda: ConfidentSimulatedBackend(gold, spreads=spreads, seed=args.seed, reply_words=58),
            dataset,
            hard,
        )
        summary["confidence"][spec] = result
        lines.append(_row("confidence", spec, result))
        print(lines[-1], flush=True)
    derail = {q: (0.35 if q in hard else 0.05) for q in questions}
    prm = SimulatedPRM(separation=args.prm_separation, noise=args.prm_noise, seed=args.seed)
    for spec in STEPS:
        name = spec.partition(":")[0]

        def strategy_for(spec: str = spec, name: str = name) -> Strategy:
            built = build_strategy(spec)
            options = built.config.model_dump(exclude_defaults=True)
            if name == "bon":
                return type(built)(**options, scorer="reward", reward=prm.outcome_reward)
            if name in ("beam", "dvts", "particles"):
                return type(built)(**options, step_reward=prm)
            return built

        result = await _run(
            strategy_for,
            lambda: SimulatedStepBackend(gold, derail=derail, spreads=spreads, seed=args.seed, steps=4),
            dataset,
            hard,
        )
        summary["steps"][spec] = result
        lines.append(_row("steps", spec, result))
        print(lines[-1], flush=True)
    summary["cascade"] = {}
    for spec, strategy_for in _cascade_configs(gold, spreads, args.seed):
        result = await _run(
            strategy_for,
            lambda: SimulatedBackend(gold, spreads=_stronger(spreads), seed=args.seed, reply_words=60, name="strong"),
            dataset,
            hard,
        )
        summary["cascade"][spec] = result
        lines.append(_row("cascade", spec, result))
        print(lines[-1], flush=True)
    seconds = time.perf_counter() - started
    meta = {
        "questions": args.questions,
        "seed": args.seed,
        "prm_noise": args.prm_noise,
        "prm_separation": args.prm_separation,
        "seconds": round(seconds, 1),
    }
    _write(Path(args.out), {"meta": meta, **summary}, lines)
    print(f"{seconds:.0f} s; wrote {args.out}/summary.json and table.md")


def _write(out: Path, summary: dict[str, Any], lines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    _plot(summary, out / "accuracy-vs-tokens.png")


def _plot(summary: dict[str, Any], path: Path) -> None:
    """Accuracy (95% CI) against generated tokens per question: the confidence setting, and the steps setting
    with one line per method across N = 4, 8, 16."""
    from thinkloop.bench.plots import _pyplot

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    for index, (spec, s) in enumerate(summary["confidence"].items()):
        a = s["all"]
        y = 100 * a["accuracy"]
        left.errorbar(
            a["completion_tokens"], y, yerr=[[y - 100 * a["ci"][0]], [100 * a["ci"][1] - y]], fmt="o", capsize=3
        )
        label = spec.replace("deepconf-online", "online").replace(",window=16", "")
        left.annotate(
            label,
            (a["completion_tokens"], y),
            textcoords="offset points",
            xytext=(6, 6 if index % 2 else -12),
            fontsize=7,
        )
    left.set_title("confidence: DeepConf against self-consistency")
    left.set_xlim(right=1400)
    for name in ("sc", "bon", "beam", "dvts", "particles"):
        points = [
            (s["all"]["completion_tokens"], 100 * s["all"]["accuracy"], s["all"]["ci"])
            for spec, s in summary["steps"].items()
            if spec.partition(":")[0] == name
        ]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        right.errorbar(
            xs,
            ys,
            yerr=[
                [y - 100 * p[2][0] for y, p in zip(ys, points, strict=True)],
                [100 * p[2][1] - y for y, p in zip(ys, points, strict=True)],
            ],
            fmt="-o",
            capsize=3,
            label=name,
        )
    right.set_title("steps: searches against SC and best-of-n, N = 4, 8, 16")
    right.legend()
    for ax in (left, right):
        ax.set_xlabel("generated tokens per question")
        ax.set_ylabel("accuracy, % (95% CI)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prm-noise", type=float, default=1.0)
    parser.add_argument("--prm-separation", type=float, default=1.0)
    parser.add_argument("--out", default="benchmarks/results/search_confidence")
    anyio.run(main, parser.parse_args())
