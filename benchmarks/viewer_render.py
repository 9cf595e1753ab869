"""Trace viewer: how fast a 10,000-node run's page is written and first painted in headless Chromium.

A real run makes the trace: tree search in beam mode (width 64, 16 proposals per thought, 12 levels) on a
scripted zero-latency model, about 10,500 nodes, most pruned outside the beam. A 5-sample self-consistency
run is the baseline, measured in the same process and the same browser. For each page: the seconds Python
takes to write it (``render_trace_html``), then, in a fresh browser context opened from file://, the time from
navigation start until the page's script has drawn everything, and until the browser has painted that frame
(the page records it from a task queued in the next animation frame). Target: the big page painted within 2 s.

Usage::

    python benchmarks/viewer_render.py [--repeats 3] [--depth 11]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from thinkloop import ScriptedBackend
from thinkloop.backends.base import Capabilities
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.strategies.tree_search import TreeSearch
from thinkloop.testing.browser import launch_chromium
from thinkloop.view import render_trace_html

SEQUENTIAL = Capabilities(honours_n=False, prompt_overhead_tokens=0)
TARGET_S = 2.0


def big_run(path: Path, depth: int) -> int:
    counter = itertools.count()
    backend = ScriptedBackend(lambda request: f"step {next(counter)}", capabilities=SEQUENTIAL)
    strategy = TreeSearch(
        mode="beam",
        branching=16,
        beam_width=64,
        max_depth=depth,
        prune_below=0.0,
        value_fn=lambda question, steps: int(steps[-1].split()[-1]) * 37 % 100 / 100,
    )
    return len(strategy.run_sync("Grow a wide tree", backend=backend, trace_path=path).graph)


def small_run(path: Path) -> int:
    answers = itertools.cycle(["42", "42", "41", "42", "40"])
    backend = ScriptedBackend(lambda request: f"Let me think. Answer: {next(answers)}", capabilities=SEQUENTIAL)
    return len(SelfConsistency(n=5).run_sync("What is 6 * 7?", backend=backend, trace_path=path).graph)


def write_page(trace: Path, repeats: int) -> tuple[Path, float, float]:
    """The page, and the median wall and CPU seconds of ``render_trace_html`` (CPU: steadier on a busy box)."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        html = render_trace_html(trace)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    page = trace.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    return page, statistics.median(wall), statistics.median(cpu)


def paint_times(browser: object, page: Path, repeats: int) -> tuple[float, float, dict]:
    """Median ms from navigation start to (script done, painted), and the page's own timings."""
    drawn, painted, timings = [], [], {}
    for _ in range(repeats):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
        tab = context.new_page()
        tab.goto(page.resolve().as_uri())
        tab.wait_for_selector("body[data-ready]", timeout=60_000)
        tab.wait_for_function("window.thinkloopViewer.paintedAt !== undefined", timeout=60_000)
        viewer = tab.evaluate("window.thinkloopViewer")
        painted.append(viewer["paintedAt"])
        drawn.append(viewer["renderedAt"])
        timings = viewer["timings"]
        context.close()
    return statistics.median(drawn), statistics.median(painted), timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depth", type=int, default=12, help="beam search levels (12: about 10,500 nodes)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        started = time.perf_counter()
        big_nodes = big_run(root / "big.jsonl", args.depth)
        made_s = time.perf_counter() - started
        small_nodes = small_run(root / "small.jsonl")
        print(f"baseline: self-consistency, {small_nodes} nodes; big: beam search, {big_nodes} nodes")
        big_page, big_write, big_cpu = write_page(root / "big.jsonl", args.repeats)
        small_page, _, _ = write_page(root / "small.jsonl", args.repeats)
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                paint_times(browser, small_page, 1)  # warm the browser up
                small_drawn, small_painted, _ = paint_times(browser, small_page, args.repeats)
                big_drawn, big_painted, timings = paint_times(browser, big_page, args.repeats)
            finally:
                browser.close()

        trace_mb = (root / "big.jsonl").stat().st_size / 1e6
        page_mb = big_page.stat().st_size / 1e6
        print(f"big run: {big_nodes} nodes made in {made_s:.1f} s; trace {trace_mb:.1f} MB, page {page_mb:.1f} MB")
        print(
            f"write the big page (python, trace read back with load_trace): {big_write:.2f} s wall, "
            f"{big_cpu:.2f} s CPU = {big_cpu / big_nodes * 1e6:.0f} us CPU per node"
        )
        print(
            f"script done (chrome): small {small_drawn:7.0f} ms   big {big_drawn:7.0f} ms   "
            f"ratio {big_drawn / small_drawn:6.1f}x"
        )
        print(
            f"first paint (chrome): small {small_painted:7.0f} ms   big {big_painted:7.0f} ms   "
            f"ratio {big_painted / small_painted:6.1f}x"
        )
        print(
            f"big page painted in {big_painted / 1000:.2f} s = {big_painted / 1000 / TARGET_S:.2f} of the "
            f"{TARGET_S:.0f} s target; its script's own split (ms): {timings}"
        )


if __name__ == "__main__":
    main()
