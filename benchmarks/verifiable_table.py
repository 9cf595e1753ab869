"""The verifiable-tasks table and plot: per family x strategy, success with its 95% (Wilson) interval, tokens and
calls per task, and each loop against one direct call on the same tasks.

    python benchmarks/verifiable_table.py benchmarks/results/verifiable/results.jsonl \
        --out benchmarks/results/verifiable

Writes ``table.md`` and ``plots/verifiable-success-vs-tokens.png``. A loop *helps* on a family when it beats
the best single call (``direct`` or ``cot``, whichever succeeds more often there) by at least 20 points of
success at no more than 8x that call's tokens per task.
Each config is compared with the single call on the tasks that config finished (every config runs the same
first tasks of a family, in growing slices), so a config that ran fewer tasks is not compared on other ones.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from thinkloop.bench.report import wilson_interval
from thinkloop.bench.store import Record, latest, read_records

LIFT_POINTS = 20.0
MAX_TOKEN_RATIO = 8.0
SINGLE_CALLS = ("direct", "cot")


@dataclass(frozen=True)
class Row:
    family: str
    strategy: str
    records: tuple[Record, ...]

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.records}

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def correct(self) -> int:
        return sum(bool(r.correct) for r in self.records)

    @property
    def rate(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    @property
    def tokens(self) -> float:
        return sum(r.total_tokens for r in self.records) / max(self.n, 1)

    @property
    def calls(self) -> float:
        return sum(r.calls for r in self.records) / max(self.n, 1)

    def on(self, ids: set[str]) -> Row:
        """The same config on a subset of its tasks."""
        return Row(self.family, self.strategy, tuple(r for r in self.records if r.id in ids))


def rows_by_family(records: list[Record]) -> dict[str, list[Row]]:
    """Finished records per family and config, in order of first appearance."""
    grouped: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in latest(records).values():
        if record.status == "done":
            grouped[record.dataset.removeprefix("verifiable-")][record.strategy].append(record)
    return {
        family: [Row(family, strategy, tuple(sorted(done, key=lambda r: r.id))) for strategy, done in configs.items()]
        for family, configs in grouped.items()
    }


def baseline(rows: list[Row]) -> Row | None:
    """The best single call: the higher success rate, then the fewer tokens."""
    singles = [r for r in rows if r.strategy in SINGLE_CALLS]
    return max(singles, key=lambda r: (r.rate, -r.tokens), default=None)


def verdict(row: Row, base: Row | None) -> tuple[str, str, str, str]:
    """(the single call's success on the row's tasks, lift in points, token ratio, helps?)."""
    if base is None or row.strategy in SINGLE_CALLS:
        return "", "", "", "(baseline)" if row is base else ""
    same = base.on(row.ids)
    if same.n < row.n:
        return "", "", "", "(no baseline on these tasks)"
    lift = 100 * (row.rate - same.rate)
    ratio = row.tokens / same.tokens if same.tokens else float("inf")
    helps = lift >= LIFT_POINTS and ratio <= MAX_TOKEN_RATIO
    return f"{100 * same.rate:.0f}%", f"{lift:+.0f}", f"{ratio:.1f}x", "yes" if helps else "no"


def render(table: dict[str, list[Row]]) -> str:
    lines = [
        "| family | strategy | tasks | success (95% CI) | tokens/task | calls/task | one call, same tasks | "
        "lift (points) | tokens vs one call | helps (>= +20 at <= 8x) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    helped = []
    for family, rows in table.items():
        base = baseline(rows)
        for row in rows:
            same, lift, ratio, helps = verdict(row, base)
            if helps == "yes" and family not in helped:
                helped.append(family)
            low, high = row.interval
            lines.append(
                f"| {family} | {row.strategy} | {row.n} | {100 * row.rate:.0f}% [{100 * low:.0f}, "
                f"{100 * high:.0f}] | {row.tokens:.0f} | {row.calls:.1f} | {same} | {lift} | {ratio} | {helps} |"
            )
    lines.append("")
    lines.append(
        f"Families where a checked loop beats the best single call by >= {LIFT_POINTS:.0f} points at <= "
        f"{MAX_TOKEN_RATIO:.0f}x the tokens: {len(helped)} of {len(table)}"
        + (f" ({', '.join(helped)})." if helped else ".")
    )
    return "\n".join(lines) + "\n"


def short(strategy: str) -> str:
    """A plot label: ``critique:max_rounds=3`` is critique@4 (attempts), ``bon:n=8`` bon@8, ``tree:...`` tree."""
    name, _, options = strategy.partition(":")
    values = dict(part.partition("=")[::2] for part in options.split(",") if "=" in part)
    if name == "critique" and "max_rounds" in values:
        return f"critique@{int(values['max_rounds']) + 1}"
    if name == "cot" and "max_rounds" in values:
        return f"cot-retry@{values['max_rounds']}"
    if name in ("bon", "sc") and "n" in values:
        return f"{name}@{values['n']}"
    return name


def plot(table: dict[str, list[Row]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(table)
    columns = 3
    rows = (len(families) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False)
    for axis, family in zip(axes.flat, families, strict=False):
        for row in table[family]:
            low, high = row.interval
            axis.errorbar(
                [row.tokens],
                [100 * row.rate],
                yerr=[[100 * (row.rate - low)], [100 * (high - row.rate)]],
                fmt="o" if row.strategy in SINGLE_CALLS else "s",
                capsize=3,
            )
            axis.annotate(
                short(row.strategy), (row.tokens, 100 * row.rate), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
        axis.set_xlim(left=0)
        axis.set_ylim(-5, 105)
        axis.set_title(f"{family} (n={max(r.n for r in table[family])} tasks)")
        axis.set_xlabel("tokens per task")
        axis.set_ylabel("success %")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(families) :]:
        axis.set_visible(False)
    figure.suptitle("SmolLM2-135M on checkable tasks: one call vs loops gated by the check (95% Wilson CI)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for table.md and plots/")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    table = rows_by_family(read_records(args.results))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(render(table), encoding="utf-8")
    if not args.no_plot:
        plot(table, args.out / "plots" / "verifiable-success-vs-tokens.png")
    sys.stdout.write(render(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
