"""Summaries of a results file: one row per config, as a rich table, markdown, JSON or CSV.

Accuracy counts finished problems only: a failed problem (server error, timeout) is an infrastructure
failure, shown in its own column, never a wrong answer. Every other column is also over finished problems.
Output is deterministic (configs in the order they first appear in the file, fixed rounding), so the
committed tables can be checked against a fresh render.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thinkloop.bench.store import Record, latest, read_records

Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval: honest at small ``n`` and near 0 or 1, where the normal one is not."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # the interval holds the observed rate; say so exactly where rounding would put 1.0 outside it
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class ConfigSummary:
    """One config's numbers. Means are per finished problem; ``pass_at_k`` is ``None`` where no record has
    sampled answers."""

    config: str
    dataset: str
    strategy: str
    spec: str
    model: str
    n: int
    """Problems answered (the accuracy's denominator); ``failed`` ones are apart, ``problems`` is both."""
    failed: int
    problems: int
    correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    pass_at_k: float | None
    mean_k: float | None
    mean_tokens: float
    mean_prompt_tokens: float
    mean_completion_tokens: float
    mean_reasoning_tokens: float
    total_tokens: int
    total_reasoning_tokens: int
    mean_calls: float
    latency_p50: float
    latency_p95: float
    total_time_s: float
    cost: float
    cost_per_question: float
    cost_per_correct: float | None
    reasoning_counted: str | None = None
    """Whether the reasoning tokens are the servers' count (``reported``), the backend's estimate
    (``estimated``: the server gave the thinking but not its count) or ``partly estimated``; ``None``: none."""
    checked: int = 0
    """Finished problems whose answer a check judged (``verdict`` passed or failed)."""
    passed: int = 0
    """Of those, how many passed: a failed check is never counted as a pass."""

    def as_dict(self) -> dict[str, Any]:
        """Fields with floats to 6 significant digits (costs are tiny numbers; rounding places would lose them);
        ``reasoning_counted`` only where there were reasoning tokens, ``checked``/``passed`` only where a check
        judged some problem."""
        fields = asdict(self)
        if fields["reasoning_counted"] is None:
            del fields["reasoning_counted"]
        if not fields["checked"]:  # no check judged any problem: nothing to say about passing one
            del fields["checked"], fields["passed"]
        return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in fields.items()}


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def summarize(records: Iterable[Record]) -> list[ConfigSummary]:
    """One summary per config (latest record per problem): data sets in the order they first appear, and
    within each, configs in the order they first appear."""
    by_config: dict[str, list[Record]] = {}
    for record in latest(records).values():
        by_config.setdefault(record.config, []).append(record)
    datasets = list(dict.fromkeys(rows[0].dataset for rows in by_config.values()))
    ordered = sorted(by_config.items(), key=lambda item: datasets.index(item[1][0].dataset))
    return [_summary(config, rows) for config, rows in ordered]


def _summary(config: str, rows: list[Record]) -> ConfigSummary:
    done = [r for r in rows if r.status == "done"]
    failed = len(rows) - len(done)
    correct = sum(1 for r in done if r.correct)
    accuracy = correct / len(done) if done else None
    low, high = wilson_interval(correct, len(done)) if done else (None, None)
    with_k = [r for r in done if r.pass_at_k is not None]
    cost = math.fsum(r.cost for r in done)
    first = rows[0]
    parts = config.split(" | ")
    return ConfigSummary(
        config=config,
        dataset=first.dataset,
        strategy=first.strategy,
        spec=parts[1] if len(parts) > 1 else "",
        model=first.model,
        n=len(done),
        failed=failed,
        problems=len(rows),
        correct=correct,
        accuracy=accuracy,
        ci_low=low,
        ci_high=high,
        pass_at_k=(sum(1 for r in with_k if r.pass_at_k) / len(with_k)) if with_k else None,
        mean_k=_mean([r.k or 0 for r in with_k]) if with_k else None,
        mean_tokens=_mean([r.total_tokens for r in done]),
        mean_prompt_tokens=_mean([r.prompt_tokens for r in done]),
        mean_completion_tokens=_mean([r.completion_tokens for r in done]),
        mean_reasoning_tokens=_mean([r.reasoning_tokens for r in done]),
        total_tokens=sum(r.total_tokens for r in done),
        total_reasoning_tokens=sum(r.reasoning_tokens for r in done),
        mean_calls=_mean([r.calls for r in done]),
        latency_p50=percentile([r.latency_s for r in done], 50),
        latency_p95=percentile([r.latency_s for r in done], 95),
        total_time_s=math.fsum(r.latency_s for r in done),
        cost=cost,
        cost_per_question=cost / len(done) if done else 0.0,
        cost_per_correct=cost / correct if correct else None,
        reasoning_counted=_reasoning_counted(done),
        checked=sum(1 for r in done if r.verdict in ("passed", "failed")),
        passed=sum(1 for r in done if r.verdict == "passed"),
    )


def _reasoning_counted(done: Sequence[Record]) -> str | None:
    reasoning = sum(r.reasoning_tokens for r in done)
    estimated = sum(r.estimated_reasoning_tokens for r in done)
    if not reasoning:
        return None
    return "reported" if not estimated else "estimated" if estimated >= reasoning else "partly estimated"


def _reasoning_cell(s: ConfigSummary) -> str:
    """Mean reasoning tokens; an estimate is marked (``~120 est.``), a server's own count is not."""
    mean = f"{s.mean_reasoning_tokens:.0f}"
    if s.reasoning_counted == "estimated":
        return f"~{mean} est."
    if s.reasoning_counted == "partly estimated":
        return f"~{mean} part est."
    return mean


def load_summaries(path: str | Path) -> list[ConfigSummary]:
    """Read a results file and summarise it per config (what ``bench report`` renders)."""
    return summarize(read_records(path))


# --- rendering ----------------------------------------------------------------------------------------
COLUMNS = (
    "dataset",
    "strategy",
    "model",
    "n",
    "accuracy (95% CI)",
    "pass@k",
    "tokens/q",
    "completion/q",
    "reasoning/q",
    "calls/q",
    "latency p50/p95 s",
    "time s",
    "$/q",
    "$/correct",
    "failed",
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "$0" if value == 0 else f"${value:.3g}"


def display_names(summaries: Sequence[ConfigSummary]) -> list[tuple[str, str]]:
    """(strategy, model) as each row shows them: the spec as typed and the model's name, unless two configs
    would then look the same (a different --max-tokens, budget or server); those show their config id's
    strategy (every option), budget and server, so no two rows read alike."""
    plain = [(s.dataset, s.strategy, s.model) for s in summaries]
    names = []
    for s, key in zip(summaries, plain, strict=True):
        if plain.count(key) == 1:
            names.append((s.strategy, s.model))
            continue
        parts = s.config.split(" | ")
        strategy = " ".join([parts[1], *parts[3:]]) if len(parts) > 1 else s.strategy
        names.append((strategy, parts[2] if len(parts) > 2 else s.model))
    return names


CHECK_COLUMN = "check passed"
"""Shown only where some problem was checked (``--check``, the verifiable set): passed of checked."""


def _columns(summaries: Sequence[ConfigSummary]) -> tuple[str, ...]:
    return (*COLUMNS, CHECK_COLUMN) if any(s.checked for s in summaries) else COLUMNS


def _rows(summaries: Sequence[ConfigSummary]) -> list[list[str]]:
    rows = []
    checked = CHECK_COLUMN in _columns(summaries)
    for s, (strategy, model) in zip(summaries, display_names(summaries), strict=True):
        row = _row(s)
        row[1], row[2] = strategy, model
        if checked:
            row.append(f"{s.passed} of {s.checked}" if s.checked else "n/a")
        rows.append(row)
    return rows


def _row(s: ConfigSummary) -> list[str]:
    accuracy = (
        "n/a"
        if s.accuracy is None
        else (f"{100 * s.accuracy:.1f}% [{100 * (s.ci_low or 0):.1f}, {100 * (s.ci_high or 0):.1f}]")
    )
    pass_k = "n/a" if s.pass_at_k is None else f"{_pct(s.pass_at_k)} (k={s.mean_k:.1f})"
    return [
        s.dataset,
        s.strategy,
        s.model,
        str(s.n),
        accuracy,
        pass_k,
        f"{s.mean_tokens:.0f}",
        f"{s.mean_completion_tokens:.0f}",
        _reasoning_cell(s),
        f"{s.mean_calls:.1f}",
        f"{s.latency_p50:.2f} / {s.latency_p95:.2f}",
        f"{s.total_time_s:.0f}",
        _money(s.cost_per_question),
        _money(s.cost_per_correct),
        str(s.failed),
    ]


def render_markdown(summaries: Sequence[ConfigSummary]) -> str:
    columns = _columns(summaries)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(summaries)]
    return "\n".join(lines) + "\n"


def render_json(summaries: Sequence[ConfigSummary]) -> str:
    return json.dumps([s.as_dict() for s in summaries], indent=2) + "\n"


def render_csv(summaries: Sequence[ConfigSummary]) -> str:
    buffer = io.StringIO()
    fields = list(ConfigSummary.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        writer.writerow(s.as_dict())
    return buffer.getvalue()


KEY_COLUMNS = ("dataset", "strategy", "model")
"""What tells configs apart: never cut (wrapped when narrow), dropped only when every row has the same value
(the title says it then)."""
OPTIONAL_COLUMNS = (
    "reasoning/q",
    "time s",
    "completion/q",
    "$/correct",
    "latency p50/p95 s",
    "pass@k",
    "calls/q",
    "$/q",
)
"""Dropped in this order until the table fits the terminal; markdown, CSV and JSON keep every column."""


_KEY_MIN_WIDTH = 28
"""Key columns keep up to this width before anything else shrinks (longer names wrap, never cut)."""


def _informative(column: str, cells: Sequence[str]) -> bool:
    """A column that says something: not all zeros or n/a (no reasoning tokens, a free local model)."""
    if column in ("reasoning/q", "$/q", "$/correct", "pass@k"):
        return any(cell not in ("0", "$0", "n/a") for cell in cells)
    return True


def rich_table(summaries: Sequence[ConfigSummary], width: int | None = None) -> Any:
    """A :class:`rich.table.Table` that fits ``width`` columns of terminal (``None``: every column).

    Key columns (data set, strategy, model) wrap but are never cut; a key every row shares moves to the
    title; uninformative columns go, then the least important ones, until the table fits.
    """
    from rich.console import Console
    from rich.table import Table

    from thinkloop.runtime.terminal import inert

    every = _columns(summaries)
    rows = [dict(zip(every, [inert(cell, one_line=True) for cell in row], strict=True)) for row in _rows(summaries)]
    shared = [c for c in KEY_COLUMNS if rows and len({r[c] for r in rows}) == 1 and width is not None]
    columns = [c for c in every if c not in shared and _informative(c, [r[c] for r in rows])]
    title = " · ".join(["thinkloop benchmark", *(rows[0][c] for c in shared)])

    def build(chosen: Sequence[str]) -> Any:
        table = Table(title=title, show_lines=False, pad_edge=False, collapse_padding=True)
        for column in chosen:
            if column in KEY_COLUMNS:
                longest = max([len(r[column]) for r in rows] + [len(column)])
                table.add_column(column, justify="left", overflow="fold", min_width=min(longest, _KEY_MIN_WIDTH))
            else:
                table.add_column(column, justify="right", no_wrap=column == "accuracy (95% CI)")
        for row in rows:
            table.add_row(*(row[c] for c in chosen))
        return table

    if width is None:
        return build(columns)
    unbounded = Console(width=10_000, file=io.StringIO())  # measures the width the table would like
    for drop in (None, *OPTIONAL_COLUMNS):
        if drop in columns:
            columns.remove(drop)
        table = build(columns)
        if unbounded.measure(table).maximum <= width:
            break
    return table


def render(summaries: Sequence[ConfigSummary], fmt: str) -> str:
    """Text for ``markdown``, ``json`` or ``csv``."""
    renderers = {"markdown": render_markdown, "json": render_json, "csv": render_csv}
    return renderers[fmt](summaries)


# --- accuracy against samples -------------------------------------------------------------------------
@dataclass(frozen=True)
class CurvePoint:
    samples: int
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    mean_samples: float
    pass_at_k: float | None = None
    """How often any of the samples was right: what a perfect verifier picking among them would reach."""


@dataclass(frozen=True)
class Curve:
    """Self-consistency's accuracy against its number of samples, for one data set and model."""

    dataset: str
    model: str
    adaptive: bool
    points: tuple[CurvePoint, ...]


def sc_curves(summaries: Sequence[ConfigSummary]) -> list[Curve]:
    """Group self-consistency configs that differ only in ``n`` into curves (fixed and adaptive apart)."""
    from thinkloop.strategies.registry import build_strategy, parse_options
    from thinkloop.strategies.self_consistency import SelfConsistencyConfig

    groups: dict[tuple[str, str, bool, str], list[CurvePoint]] = {}
    for s in summaries:
        name, _, options = s.spec.partition(":")
        if name != "sc" or s.accuracy is None:
            continue
        config = build_strategy(s.spec).config
        if not isinstance(config, SelfConsistencyConfig):
            continue
        rest = {k: v for k, v in parse_options(options).items() if k != "n"}
        adaptive = config.adaptive
        key = (s.dataset, s.model, adaptive, json.dumps(rest, sort_keys=True))
        groups.setdefault(key, []).append(
            CurvePoint(
                samples=config.n,
                accuracy=s.accuracy,
                ci_low=s.ci_low or 0.0,
                ci_high=s.ci_high or 0.0,
                n=s.n,
                mean_samples=s.mean_k if s.mean_k is not None else float(config.n),
                pass_at_k=s.pass_at_k,
            )
        )
    return [
        Curve(dataset, model, adaptive, tuple(sorted(points, key=lambda p: p.samples)))
        for (dataset, model, adaptive, _), points in groups.items()
        if len(points) > 1
    ]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (less ``x``, more ``y``), by ``x``."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))
