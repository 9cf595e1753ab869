"""The report: Wilson intervals, percentiles, the Pareto front, every output format, plots, and the committed
results regenerating byte for byte."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.bench.plots import write_plots
from thinkloop.bench.report import (
    load_summaries,
    pareto_front,
    percentile,
    render,
    render_markdown,
    sc_curves,
    summarize,
    wilson_interval,
)
from thinkloop.bench.store import Record, ResultStore

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
PNG = b"\x89PNG\r\n\x1a\n"


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(43, 100)
    assert (round(low, 4), round(high, 4)) == (0.3373, 0.5278)
    assert wilson_interval(0, 10)[0] == 0.0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(successes=st.integers(0, 500), extra=st.integers(0, 500))
def test_the_wilson_interval_holds_the_rate_inside_zero_and_one(successes: int, extra: int) -> None:
    trials = successes + extra
    if trials == 0:
        return
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0


def test_percentiles_interpolate_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert (percentile(values, 50), percentile(values, 0), percentile(values, 100)) == (3.0, 1.0, 10.0)
    assert percentile(values, 95) == pytest.approx(8.8)
    assert percentile([], 50) == 0.0


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_the_pareto_front_is_exactly_the_undominated_points(points: list[tuple[int, int]]) -> None:
    front = set(pareto_front([(float(x), float(y)) for x, y in points]))
    for i, (x, y) in enumerate(points):
        dominated = any(x2 <= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in points)
        assert (i in front) == (not dominated)


def rec(
    config: str,
    problem: str,
    *,
    correct: bool | None,
    latency: float = 1.0,
    tokens: int = 100,
    status: str = "done",
    cost: float = 0.0,
    k: int | None = None,
    any_right: bool | None = None,
) -> Record:
    dataset, spec, model = config.split(" | ")
    return Record(
        config=config,
        strategy=spec,
        model=model,
        dataset=dataset,
        id=problem,
        status=status,
        gold="1",
        correct=correct,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        calls=1,
        latency_s=latency,
        cost=cost,
        k=k,
        pass_at_k=any_right,
        reasoning_tokens=tokens // 4,
    )


def sample_records() -> list[Record]:
    a, b = "toy | cot | m", "toy | sc:n=4 | m"
    return [
        rec(a, "1", correct=True, latency=1.0, cost=0.002),
        rec(a, "2", correct=False, latency=3.0, cost=0.002),
        rec(a, "3", correct=None, status="failed"),
        rec(b, "1", correct=True, tokens=400, k=4, any_right=True, latency=4.0, cost=0.008),
        rec(b, "2", correct=True, tokens=400, k=4, any_right=True, latency=6.0, cost=0.008),
    ]


def test_a_summary_counts_failures_apart_and_prices_correct_answers() -> None:
    cot, sc = summarize(sample_records())
    assert (cot.n, cot.failed, cot.problems, cot.correct, cot.accuracy) == (2, 1, 3, 1, 0.5)
    assert (cot.latency_p50, cot.latency_p95, cot.total_time_s) == (2.0, 2.9, 4.0)
    assert (cot.mean_tokens, cot.mean_reasoning_tokens, cot.cost_per_correct) == (100, 25, 0.004)
    assert cot.pass_at_k is None and sc.pass_at_k == 1.0 and sc.mean_k == 4.0
    assert (sc.accuracy, sc.cost_per_question) == (1.0, 0.008)


def test_every_format_has_one_row_per_config() -> None:
    summaries = summarize(sample_records())
    markdown = render_markdown(summaries).splitlines()
    assert len(markdown) == 4 and markdown[0].startswith("| dataset | strategy | model | n | accuracy (95% CI)")
    assert markdown[2] == (
        "| toy | cot | m | 2 | 50.0% [9.5, 90.5] | n/a | 100 | 50 | 25 | 1.0 | 2.00 / 2.90 | 4 | $0.002 | $0.004 | 1 |"
    )
    rows = json.loads(render(summaries, "json"))
    assert [(r["strategy"], r["model"], r["n"], r["accuracy"], r["failed"]) for r in rows] == [
        ("cot", "m", 2, 0.5, 1),
        ("sc:n=4", "m", 2, 1.0, 0),
    ]
    table = list(csv.DictReader(io.StringIO(render(summaries, "csv"))))
    assert [(r["strategy"], r["accuracy"], r["pass_at_k"]) for r in table] == [
        ("cot", "0.5", ""),
        ("sc:n=4", "1.0", "1.0"),
    ]


def test_the_command_renders_formats_and_writes_deterministic_plots(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    with ResultStore(results) as store:
        for record in sample_records():
            store.append(record)
    command = [sys.executable, "-m", "thinkloop", "bench", "report", str(results)]
    markdown = subprocess.run([*command, "--format", "markdown"], capture_output=True, text=True, check=True)
    assert markdown.stdout == render_markdown(load_summaries(results))
    table = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "sc:n=4" in table.stdout and "50.0%" in table.stdout
    first = subprocess.run(
        [*command, "--format", "json", "--plots", str(tmp_path / "p1")], capture_output=True, text=True, check=True
    )
    assert json.loads(first.stdout)[0]["strategy"] == "cot"
    written = sorted(p.name for p in (tmp_path / "p1").iterdir())
    assert written == ["toy-accuracy-vs-cost.png", "toy-accuracy-vs-tokens.png"]
    summaries = load_summaries(results)
    write_plots(summaries, sc_curves(summaries), tmp_path / "p2")
    for name in written:
        data = (tmp_path / "p1" / name).read_bytes()
        assert data.startswith(PNG) and data == (tmp_path / "p2" / name).read_bytes()


def test_a_missing_results_file_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "thinkloop", "bench", "report", "nope.jsonl"], capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (1, "thinkloop bench: error: nope.jsonl: no such results file\n")


def test_sc_sweeps_become_curves_fixed_and_adaptive_apart() -> None:
    records = [
        rec(f"d | sc:n={n} | m", str(i), correct=i < n, k=n, any_right=True) for n in (1, 3, 5) for i in range(6)
    ]
    records += [rec(f"d | sc:adaptive=true,n={n} | m", "0", correct=True, k=2, any_right=True) for n in (4, 8)]
    fixed, adaptive = sc_curves(summarize(records))
    assert not fixed.adaptive and [(p.samples, p.accuracy) for p in fixed.points] == [(1, 1 / 6), (3, 0.5), (5, 5 / 6)]
    assert adaptive.adaptive and [(p.samples, p.mean_samples) for p in adaptive.points] == [(4, 2.0), (8, 2.0)]


# --- the committed results ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["embedded", "simulated"])
def test_the_committed_tables_and_plots_regenerate_from_the_committed_results(tmp_path: Path, name: str) -> None:
    folder = RESULTS / name
    assert (folder / "table.md").exists(), f"the committed results are missing from {folder}"
    summaries = load_summaries(folder / "results.jsonl")
    table = render(summaries, "markdown")
    assert (folder / "table.md").read_text() == table
    assert (folder / "table.json").read_text() == render(summaries, "json")
    if name == "embedded":  # the README shows the same table
        assert table in (RESULTS.parent / "README.md").read_text()
    committed = sorted(p.name for p in (folder / "plots").glob("*.png"))
    written = write_plots(summaries, sc_curves(summaries), tmp_path)
    assert sorted(p.name for p in written) == committed
    for path in written:
        assert path.read_bytes() == (folder / "plots" / path.name).read_bytes(), path.name


def test_the_bench_facade_resolves_every_name_lazily() -> None:
    probe = (
        "import sys, thinkloop.bench as b\n"
        "assert 'thinkloop.bench.runner' not in sys.modules\n"
        "missing = [n for n in b.__all__ if getattr(b, n, None) is None]\n"
        "print(missing)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the table fits the terminal; names are never cut ---------------------------------------------------------
SNAPSHOTS = Path(__file__).parent / "snapshots"


def report_at(width: int, results: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(width)}
    return subprocess.run(
        [sys.executable, "-m", "thinkloop", "bench", "report", str(results), *extra],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


@pytest.mark.parametrize("width", [80, 160])
def test_the_table_fits_the_terminal_and_matches_its_snapshot(width: int) -> None:
    out = report_at(width, RESULTS / "embedded" / "results.jsonl").stdout
    assert out == (SNAPSHOTS / f"bench-report-embedded-{width}.txt").read_text()
    assert max(len(line) for line in out.splitlines()) <= width
    assert "…" not in out
    for spec in ("sc:n=8,adaptive=true", "bon:n=8,scorer=judge"):  # what tells configs apart, whole
        assert f"│{spec} " in out
    assert "SmolLM2-135M-Instruct" in out.splitlines()[0]  # shared by every row: said once, in the title


def test_long_names_wrap_at_80_columns_and_other_formats_keep_them_whole(tmp_path: Path) -> None:
    long = ["sc:n=16,adaptive=true,confidence=0.9,min_samples=3", "sc:n=16,adaptive=true,confidence=0.9,parallel=4"]
    results = tmp_path / "r.jsonl"
    with ResultStore(results) as store:
        for spec in long:
            for i in range(3):
                store.append(rec(f"toy | {spec} | some-provider/a-rather-long-model-name", str(i), correct=i > 0))
    out = report_at(80, results).stdout
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    cells = ["".join(line.split("│")[1].strip() for line in block) for block in _row_blocks(out)]
    assert cells == long
    assert [r["strategy"] for r in json.loads(report_at(80, results, "--format", "json").stdout)] == long
    assert all(spec in report_at(80, results, "--format", "markdown").stdout for spec in long)


def _row_blocks(table: str) -> list[list[str]]:
    """The body lines of a rich table, grouped per row (a row starts where its first cell has text)."""
    body = [line for line in table.splitlines() if line.startswith("│")]
    blocks: list[list[str]] = []
    for line in body:
        if line.split("│")[2].strip():  # the n column is filled on a row's first line only
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def test_plots_without_matplotlib_name_the_extra(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    with ResultStore(results) as store:
        for record in sample_records():
            store.append(record)
    probe = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from thinkloop.cli import main\n"
        f"sys.exit(main(['bench', 'report', {str(results)!r}, '--plots', {str(tmp_path / 'p')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "thinkloop bench: error: --plots needs matplotlib, which is not installed: pip install 'thinkloop[plots]'\n"
    )
    assert not (tmp_path / "p").exists()


# --- plots: every label readable, each thing said once ----------------------------------------------------
def test_crowded_labels_never_overlap_and_stay_inside_the_axes() -> None:
    from thinkloop.bench.plots import _marker_boxes, _place_labels, _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    points = [(40 + 3 * i, 40 + (i % 3)) for i in range(6)] + [(300, 70), (305, 71)]
    labels = [f"sc:n={i},adaptive=true" for i in range(len(points))]
    ax.plot([p[0] for p in points], [p[1] for p in points], "o")
    ax.set_xlim(0, 320)
    ax.set_ylim(0, 100)
    fig.canvas.draw()
    markers, bars = _marker_boxes(ax, points, [y - 4 for _, y in points], [y + 4 for _, y in points])
    _place_labels(ax, points, labels, markers, bars)
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    assert len(boxes) == len(points)
    for i, box in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1 :])
        assert not any(box.overlaps(other) for other in markers)
    plt.close(fig)


def test_curve_titles_and_file_names_say_each_thing_once(tmp_path: Path) -> None:
    records = [
        rec(f"simulated | sc:n={n} | simulated(p=0.45)", str(i), correct=i < n, k=n, any_right=True)
        for n in (1, 3)
        for i in range(4)
    ]
    records += [
        rec(f"gsm8k | sc:n={n} | qwen", str(i), correct=True, k=n, any_right=True) for n in (1, 3) for i in range(2)
    ]
    summaries = summarize(records)
    names = sorted(p.name for p in write_plots(summaries, sc_curves(summaries), tmp_path))
    assert "simulated-p-0.45-sc-curve.png" in names and "gsm8k-qwen-sc-curve.png" in names
    assert all(name.count("simulated") <= 1 for name in names)


def test_configs_that_would_read_alike_show_what_tells_them_apart() -> None:
    records = [
        rec("toy | cot | m", "1", correct=True),
        rec("toy | cot:max_tokens=64 | m", "1", correct=False),
        rec("toy | sc:n=4 | m@127.0.0.1:8001/v1", "1", correct=True),
        rec("toy | sc:n=4 | m@127.0.0.1:8002/v1", "1", correct=True),
    ]
    # typed alike: "cot" twice (once with --max-tokens 64), "sc:n=4" on model "m" at two servers
    records = [
        records[0],
        records[1].model_copy(update={"strategy": "cot"}),
        *(r.model_copy(update={"strategy": "sc:n=4", "model": "m"}) for r in records[2:]),
    ]
    rows = [line.split(" | ")[1:3] for line in render_markdown(summarize(records)).splitlines()[2:]]
    assert rows == [
        ["cot", "m"],
        ["cot:max_tokens=64", "m"],
        ["sc:n=4", "m@127.0.0.1:8001/v1"],
        ["sc:n=4", "m@127.0.0.1:8002/v1"],
    ]


def test_the_committed_effort_table_and_plot_regenerate_from_the_committed_results(tmp_path: Path) -> None:
    folder = RESULTS / "effort"
    curve = importlib.util.spec_from_file_location("effort_curve", RESULTS.parent / "effort_curve.py")
    assert curve is not None and curve.loader is not None
    module = importlib.util.module_from_spec(curve)
    curve.loader.exec_module(module)
    summaries = {s.strategy: s for s in load_summaries(folder / "results.jsonl")}
    rows = [summaries[spec] for spec in module.LEVELS + module.REFERENCES]
    assert (folder / "table.md").read_text() == render(rows, "markdown")
    written = module.plot_levels(summaries, tmp_path / "accuracy-vs-tokens.png")
    assert written.read_bytes() == (folder / "accuracy-vs-tokens.png").read_bytes()
