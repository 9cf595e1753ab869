"""Plots of a benchmark: accuracy against mean tokens and against cost (Pareto front marked), and
self-consistency's accuracy against its number of samples.

matplotlib is imported inside the functions with the non-interactive Agg backend, so the report works on a
server and ``import thinkloop`` never pays for it. PNGs are written without a software stamp so the same
results always give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thinkloop.bench.report import ConfigSummary, Curve, display_names, pareto_front

_METADATA = {"Software": None}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    """A file-name part: letters, digits, dots and single dashes (``gsm8k, qwen`` -> ``gsm8k-qwen``)."""
    return re.sub(r"-+", "-", "".join(c if c.isalnum() or c in "-." else "-" for c in text)).strip("-") or "x"


_RADII = (6, 16, 28, 42, 58, 76)
"""Label distances from their point, in typographic points: nearest first, a leader line beyond the first."""
_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))


def _place_labels(
    ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str], markers: Sequence[Any], obstacles: list[Any]
) -> None:
    """Put each label where it overlaps no other label, marker, error bar or the legend, inside the axes, and
    where its leader line crosses no other marker: the first free spot among growing distances in eight
    directions (points taken left to right)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [*markers, *obstacles]
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    points_per_inch = 72 / fig.dpi

    def crosses(index: int, dx: int, dy: int, radius: int) -> bool:
        x, y = ax.transData.transform(points[index])
        reach = radius / points_per_inch
        steps = [(x + dx * reach * t / 8, y + dy * reach * t / 8) for t in range(1, 9)]
        return any(box.contains(*step) for j, box in enumerate(markers) if j != index for step in steps)

    for index in order:
        chosen = None
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                if radius > _RADII[0] and crosses(index, dx, dy, radius):
                    continue
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                text = ax.annotate(
                    labels[index],
                    points[index],
                    textcoords="offset points",
                    fontsize=8,
                    ha=ha,
                    va=va,
                    xytext=(dx * radius, dy * radius),
                )
                box = text.get_window_extent(renderer).expanded(1.04, 1.1)
                inside = box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
                if inside and not any(box.overlaps(other) for other in taken):
                    chosen = (text, box)
                    if radius > _RADII[0]:  # a leader line from the point to its far label
                        ax.annotate(
                            "",
                            points[index],
                            textcoords="offset points",
                            xytext=(dx * radius, dy * radius),
                            arrowprops={
                                "arrowstyle": "-",
                                "color": "grey",
                                "linewidth": 0.6,
                                "shrinkA": 0,
                                "shrinkB": 4,
                            },
                        )
                    break
                text.remove()
            if chosen is not None:
                break
        if chosen is None:  # nowhere free: the nearest spot, still inside the axes
            text = ax.annotate(
                labels[index],
                points[index],
                textcoords="offset points",
                fontsize=8,
                xytext=(6, 4),
                ha="left",
                va="bottom",
            )
            chosen = (text, text.get_window_extent(renderer))
        taken.append(chosen[1])


def _marker_boxes(
    ax: Any, points: Sequence[tuple[float, float]], lows: Sequence[float], highs: Sequence[float]
) -> tuple[list[Any], list[Any]]:
    """Display boxes of each marker, and of each error bar: labels must cover neither."""
    from matplotlib.transforms import Bbox

    markers, bars = [], []
    for (x, y), low, high in zip(points, lows, highs, strict=True):
        px, py = ax.transData.transform((x, y))
        _, p_low = ax.transData.transform((x, low))
        _, p_high = ax.transData.transform((x, high))
        markers.append(Bbox([[px - 7, py - 7], [px + 7, py + 7]]))
        bars.append(Bbox([[px - 4, p_low - 1], [px + 4, p_high + 1]]))
    return markers, bars


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
    lows = [100 * (s.ci_low or 0.0) for s in rows]
    highs = [100 * (s.ci_high or 0.0) for s in rows]
    front = set(pareto_front(points))
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    models = sorted({s.model for s in rows})
    colours = plt.get_cmap("tab10")
    for index, (s, (px, py)) in enumerate(zip(rows, points, strict=True)):
        colour = colours(models.index(s.model) % 10)
        ax.errorbar(
            px,
            py,
            yerr=[[py - lows[index]], [highs[index] - py]],
            fmt="*" if index in front else "o",
            markersize=11 if index in front else 6,
            color=colour,
            ecolor=colour,
            elinewidth=1,
            capsize=3,
            label=s.model if s.model not in ax.get_legend_handles_labels()[1] else None,
        )
    ordered = sorted(front, key=lambda i: points[i][0])
    if len(ordered) > 1:
        ax.plot(
            [points[i][0] for i in ordered],
            [points[i][1] for i in ordered],
            "--",
            color="grey",
            linewidth=1,
            label="Pareto front",
        )
    if x == "tokens":
        ax.set_xlabel("mean tokens per question (prompt + completion)")
    else:
        ax.set_xlabel("cost per question (USD)")
    if points:
        low_x, high_x = min(p[0] for p in points), max(p[0] for p in points)
        ax.set_xlim(left=low_x - 0.08 * (high_x - low_x or 1), right=high_x + 0.08 * (high_x - low_x or 1))
    ax.set_ylabel("accuracy (%), 95% Wilson CI")
    top = min(105.0, max(highs, default=100.0) + 12)
    ax.set_ylim(bottom=-0.05 * top, top=top)  # room for the label of a point at 0%
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(True, alpha=0.3)
    same_n = len({s.n for s in rows}) == 1
    suffix = f", {rows[0].n} questions each" if rows and same_n else ""
    ax.set_title((title or f"accuracy vs {'tokens' if x == 'tokens' else 'cost'} (★ Pareto front)") + suffix)
    legend = ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    names = [strategy for strategy, _ in display_names(rows)]
    labels = [name if same_n else f"{name} ({s.n} q)" for name, s in zip(names, rows, strict=True)]
    markers, bars = _marker_boxes(ax, points, lows, highs)
    _place_labels(ax, points, labels, markers, [*bars, legend.get_window_extent(fig.canvas.get_renderer())])
    return _save(plt, fig, path, layout=False)


def plot_curve(curve: Curve, path: str | Path, *, expected: Sequence[float] | None = None) -> Path:
    """Accuracy against samples for self-consistency, with error bars; ``expected`` (one value per point)
    overlays a closed-form prediction."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    xs = [p.mean_samples if curve.adaptive else p.samples for p in curve.points]
    ys = [100 * p.accuracy for p in curve.points]
    errors = [
        [y - 100 * p.ci_low for y, p in zip(ys, curve.points, strict=True)],
        [100 * p.ci_high - y for y, p in zip(ys, curve.points, strict=True)],
    ]
    ax.errorbar(xs, ys, yerr=errors, fmt="o-", capsize=3, label="measured (95% CI)")
    if expected is not None:
        ax.plot(xs, [100 * e for e in expected], "s--", color="grey", label="closed form")
    if all(p.pass_at_k is not None for p in curve.points):
        ax.plot(
            xs,
            [100 * (p.pass_at_k or 0.0) for p in curve.points],
            "^:",
            color="tab:green",
            label="pass@k (any sample right)",
        )
    ax.set_xlabel("mean samples per question" if curve.adaptive else "samples per question (n)")
    ax.set_ylabel("accuracy (%)")
    kind = "adaptive self-consistency" if curve.adaptive else "self-consistency"
    ax.set_title(f"{kind}: {_subject(curve)}")
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


def _subject(curve: Curve) -> str:
    """The data set and model, each said once (the simulated model already names its data set)."""
    if curve.dataset.lower() in curve.model.lower():
        return curve.model
    return f"{curve.dataset}, {curve.model}"


def write_plots(summaries: Sequence[ConfigSummary], curves: Sequence[Curve], folder: str | Path) -> list[Path]:
    """Every plot for a report: per data set, accuracy against tokens, and against cost where any config
    costs money; one curve plot per self-consistency sweep."""
    folder = Path(folder)
    written = []
    datasets: dict[str, list[ConfigSummary]] = {}
    for s in summaries:
        datasets.setdefault(s.dataset, []).append(s)
    for dataset, rows in datasets.items():
        written.append(
            plot_tradeoff(
                rows,
                folder / f"{_slug(dataset)}-accuracy-vs-tokens.png",
                title=f"{dataset}: accuracy vs mean tokens (★ Pareto front)",
            )
        )
        if any(s.cost_per_question > 0 for s in rows):
            written.append(
                plot_tradeoff(
                    rows,
                    folder / f"{_slug(dataset)}-accuracy-vs-cost.png",
                    x="cost",
                    title=f"{dataset}: accuracy vs cost (★ Pareto front)",
                )
            )
    for curve in curves:
        kind = "sc-adaptive" if curve.adaptive else "sc"
        path = folder / f"{_slug(_subject(curve))}-{kind}-curve.png"
        written.append(plot_curve(curve, path, expected=expected_curve(curve)))
    return written


def _save(plt: Any, fig: Any, path: str | Path, *, layout: bool = True) -> Path:
    """Write a figure reproducibly (fixed metadata, so the same results give the same bytes) and free it.
    ``layout=False`` keeps a layout made before labels were placed (placing them measured that layout)."""
    if layout:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata=_METADATA)
    plt.close(fig)
    return path
