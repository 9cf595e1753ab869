"""Plots of a benchmark: accuracy against mean tokens and against cost (Pareto front marked), and
self-consistency's accuracy against its number of samples.

matplotlib is imported inside the functions with the non-interactive Agg backend, so the report works on a
server and ``import thinkloop`` never pays for it. PNGs are written without a software stamp so the same
results always give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thinkloop.bench.report import ConfigSummary, Curve, pareto_front

_METADATA = {"Software": None}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-") or "x"


def _crowd(points: Sequence[tuple[float, float]], index: int) -> int:
    """How many points left of ``points[index]`` sit close enough for their labels to collide: its label is
    raised that many lines."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx, dy = 0.25 * ((max(xs) - min(xs)) or 1.0), 0.06 * ((max(ys) - min(ys)) or 1.0)
    x, y = points[index]
    return sum(1 for j, (x2, y2) in enumerate(points)
               if (x2, j) < (x, index) and abs(x - x2) < dx and abs(y - y2) < dy)


def plot_tradeoff(
    summaries: Sequence[ConfigSummary], path: str | Path, *, x: str = "tokens", title: str | None = None
) -> Path:
    """Accuracy (with its 95% CI) against mean tokens per question or cost per question; one point per
    config labelled with its strategy and number of questions, the Pareto front starred and joined."""
    plt = _pyplot()
    xs: Callable[[ConfigSummary], float] = (
        (lambda s: s.mean_tokens) if x == "tokens" else (lambda s: s.cost_per_question)
    )
    rows = [s for s in summaries if s.accuracy is not None]
    points = [(xs(s), 100 * (s.accuracy or 0.0)) for s in rows]
    front = set(pareto_front(points))
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    models = sorted({s.model for s in rows})
    colours = plt.get_cmap("tab10")
    for index, (s, (px, py)) in enumerate(zip(rows, points, strict=True)):
        colour = colours(models.index(s.model) % 10)
        low, high = 100 * (s.ci_low or 0.0), 100 * (s.ci_high or 0.0)
        ax.errorbar(
            px, py, yerr=[[py - low], [high - py]], fmt="*" if index in front else "o", markersize=11
            if index in front else 6, color=colour, ecolor=colour, elinewidth=1, capsize=3,
            label=s.model if s.model not in ax.get_legend_handles_labels()[1] else None,
        )
        ax.annotate(f"{s.strategy} ({s.n} q)", (px, py), textcoords="offset points",
                    xytext=(6, 4 + 10 * _crowd(points, index)), fontsize=8)
    ordered = sorted(front, key=lambda i: points[i][0])
    if len(ordered) > 1:
        ax.plot([points[i][0] for i in ordered], [points[i][1] for i in ordered], "--", color="grey",
                linewidth=1, label="Pareto front")
    if x == "tokens":
        ax.set_xlabel("mean tokens per question (prompt + completion)")
    else:
        ax.set_xlabel("cost per question (USD)")
    if points:
        low_x, high_x = min(p[0] for p in points), max(p[0] for p in points)
        ax.set_xlim(left=low_x - 0.05 * (high_x - low_x or 1), right=high_x + 0.3 * (high_x - low_x or 1))
    ax.set_ylabel("accuracy (%), 95% Wilson CI")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f"accuracy vs {'tokens' if x == 'tokens' else 'cost'} (★ Pareto front)")
    ax.legend(loc="best", fontsize=8)
    return _save(plt, fig, path)


def plot_curve(curve: Curve, path: str | Path, *, expected: Sequence[float] | None = None) -> Path:
    """Accuracy against samples for self-consistency, with error bars; ``expected`` (one value per point)
    overlays a closed-form prediction."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    xs = [p.mean_samples if curve.adaptive else p.samples for p in curve.points]
    ys = [100 * p.accuracy for p in curve.points]
    errors = [[y - 100 * p.ci_low for y, p in zip(ys, curve.points, strict=True)],
              [100 * p.ci_high - y for y, p in zip(ys, curve.points, strict=True)]]
    ax.errorbar(xs, ys, yerr=errors, fmt="o-", capsize=3, label="measured (95% CI)")
    if expected is not None:
        ax.plot(xs, [100 * e for e in expected], "s--", color="grey", label="closed form")
    if all(p.pass_at_k is not None for p in curve.points):
        ax.plot(xs, [100 * (p.pass_at_k or 0.0) for p in curve.points], "^:", color="tab:green",
                label="pass@k (any sample right)")
    ax.set_xlabel("mean samples per question" if curve.adaptive else "samples per question (n)")
    ax.set_ylabel("accuracy (%)")
    kind = "adaptive self-consistency" if curve.adaptive else "self-consistency"
    ax.set_title(f"{kind}: {curve.dataset}, {curve.model}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(plt, fig, path)


def expected_curve(curve: Curve) -> list[float] | None:
    """The closed-form majority-vote accuracy for a fixed self-consistency sweep on the simulated model."""
    from thinkloop.bench.simulated import majority_vote_accuracy, spread_of

    spread = spread_of(curve.model)
    if spread is None or curve.adaptive or curve.dataset != "simulated":
        return None
    return [majority_vote_accuracy(point.samples, spread) for point in curve.points]


def write_plots(summaries: Sequence[ConfigSummary], curves: Sequence[Curve], folder: str | Path) -> list[Path]:
    """Every plot for a report: per data set, accuracy against tokens, and against cost where any config
    costs money; one curve plot per self-consistency sweep."""
    folder = Path(folder)
    written = []
    datasets: dict[str, list[ConfigSummary]] = {}
    for s in summaries:
        datasets.setdefault(s.dataset, []).append(s)
    for dataset, rows in datasets.items():
        written.append(plot_tradeoff(rows, folder / f"{_slug(dataset)}-accuracy-vs-tokens.png",
                                     title=f"{dataset}: accuracy vs mean tokens (★ Pareto front)"))
        if any(s.cost_per_question > 0 for s in rows):
            written.append(plot_tradeoff(rows, folder / f"{_slug(dataset)}-accuracy-vs-cost.png", x="cost",
                                         title=f"{dataset}: accuracy vs cost (★ Pareto front)"))
    for curve in curves:
        kind = "sc-adaptive" if curve.adaptive else "sc"
        path = folder / f"{_slug(curve.dataset)}-{_slug(curve.model)}-{kind}-curve.png"
        written.append(plot_curve(curve, path, expected=expected_curve(curve)))
    return written


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Write a figure reproducibly (fixed metadata, so the same results give the same bytes) and free it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata=_METADATA)
    plt.close(fig)
    return path
