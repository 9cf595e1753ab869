"""The viewer page in a real browser: headless Chromium (Debian's package) driven by Playwright.

Pages are written from real runs (ScriptedBackend under real strategies) and opened from file://, as a user
opens the file ``thinkloop view`` writes. One browser serves the whole module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import view_traces
from thinkloop.runtime.result import Result
from thinkloop.testing.browser import chromium_path, launch_chromium
from thinkloop.view import write_trace_html

if chromium_path() is None:  # CI installs it (.ci/run); there a missing browser is a failure, not a skip
    if os.environ.get("CI") or os.environ.get("THINKLOOP_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is missing: .ci/run should have installed it", pytrace=False)
    pytest.skip("no system Chromium (apt-get install chromium)", allow_module_level=True)

playwright_sync = pytest.importorskip("playwright.sync_api")


@dataclass
class Built:
    result: Result
    html: Path


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Every run and page of the module, made before the browser starts (sync Playwright runs an event loop
    in this thread, so no strategy can run while it is up)."""
    root = tmp_path_factory.mktemp("pages")
    built = {}
    for name, build in [
        ("sc", view_traces.self_consistency),
        ("tree", view_traces.tree_search),
        ("inject", view_traces.injected),
        ("think", view_traces.reasoning),
    ]:
        trace = root / f"{name}.jsonl"
        built[name] = Built(build(trace), write_trace_html(trace, root / f"{name}.html"))
    built["failed"] = Built(view_traces.failed_check(root / "failed.jsonl"), None)  # type: ignore[arg-type]
    built["failed"].html = write_trace_html(root / "failed.jsonl", root / "failed.html")
    # A bench-style directory of traces, one per config and problem.
    traces = root / "traces"
    sc = view_traces.self_consistency(traces / "sc" / "q1.jsonl")
    tree = view_traces.tree_search(traces / "tree" / "q1.jsonl")
    html = write_trace_html(traces, root / "bench.html")
    built["bench-sc"], built["bench-tree"] = Built(sc, html), Built(tree, html)
    # Ten thousand nodes.
    view_traces.big_beam_search(root / "beam.jsonl", beam_width=4, branching=8, max_depth=8)
    nodes = view_traces.tiled(root / "beam.jsonl", root / "big.jsonl", nodes=10_000)
    built["big"] = Built(None, write_trace_html(root / "big.jsonl", root / "big.html"))  # type: ignore[arg-type]
    built["big"].nodes = nodes  # type: ignore[attr-defined]
    return built


@pytest.fixture(scope="module")
def browser(pages: dict[str, Built]) -> Iterator[object]:
    with playwright_sync.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


class Opened:
    """A page opened from file://, with every request it made and every dialog it tried to show."""

    def __init__(self, browser: object, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        # Every request goes through here: the page itself is let through, anything else is recorded and refused.
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.url = path.resolve().as_uri()
        started = time.perf_counter()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready]", timeout=30_000)
        self.load_s = time.perf_counter() - started

    def _route(self, route: object) -> None:
        if route.request.url == self.url:  # type: ignore[attr-defined]
            route.continue_()  # type: ignore[attr-defined]
        else:
            route.abort()  # type: ignore[attr-defined]

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_text_contents()

    def ids(self, selector: str) -> list[int]:
        return [int(i) for i in self.page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.id)")]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: object) -> Iterator:
    opened: list[Opened] = []

    def open_(path: Path) -> Opened:
        page = Opened(browser, path)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        assert page.errors == [], page.errors  # the page's script never threw
        page.close()


# --- the graph: every node, the answer path, greyed branches, backtracks, the vote ------------------------
def test_self_consistency_draws_every_node_highlights_the_answer_path_and_tallies_the_vote(pages, open_page):
    result, page = pages["sc"].result, open_page(pages["sc"].html)

    assert sorted(page.ids("#graph [data-id]")) == [n.id for n in result.graph.nodes()]
    assert page.ids("#graph .node.on-path") == [n.id for n in result.answer_path()]
    assert page.texts(".answer") == ["42"]
    assert page.texts("#summary .badge") == ["stop: completed"]
    tally = page.texts("#summary .tally span")
    assert tally[:6] == ["42", "3", "40", "1", "41", "1"] or tally[:6] == ["42", "3", "41", "1", "40", "1"]
    totals = dict(zip(page.texts(".totals span"), page.texts(".totals b"), strict=True))
    assert totals["calls"] == str(result.usage.calls) == "5"
    assert totals["prompt tokens"] == f"{result.usage.prompt_tokens:,}"
    assert totals["completion tokens"] == f"{result.usage.completion_tokens:,}"
    assert page.texts(".meter span")[0::2] == ["tokens", "calls"]  # the budget's two limits, used against each
    assert page.load_s < 10


def test_a_failed_check_is_drawn_as_failed_with_its_warnings_and_the_tally_adds_up(pages, open_page):
    result, page = pages["failed"].result, open_page(pages["failed"].html)
    assert result.verdict == "failed" and result.answer == "42"

    assert page.texts(".answer") == ["42"]
    assert "failed" in page.page.eval_on_selector(".answer", "e => e.className").split()
    assert page.page.eval_on_selector(".answer", "e => getComputedStyle(e).color") == "rgb(220, 38, 38)"  # not green
    assert page.texts("#summary .badge") == ["check failed", "stop: completed"]
    assert page.texts("#summary .stop-detail") == [result.stop_detail]
    assert page.texts("#summary .feedback") == [f"The check said: {result.feedback}"]
    assert page.texts("#summary .warning") == [f"warning: {w}" for w in result.warnings]
    assert page.texts("#summary h3")[-1] == "Vote tally: 3 votes from 4 samples; 1 gave no answer"
    tally = page.texts("#summary .tally span")
    assert tally == ["42", "2", "41", "1", "(no answer)", "1"]
    assert sum(int(count) for count in tally[1::2]) == 4  # the rows add up to the samples drawn


def test_tree_search_greys_pruned_branches_with_their_reason_and_shows_backtracks(pages, open_page):
    result, page = pages["tree"].result, open_page(pages["tree"].html)
    graph = result.graph

    assert sorted(page.ids("#graph [data-id]")) == [n.id for n in graph.nodes()]
    assert page.ids("#graph .node.on-path") == [n.id for n in result.answer_path()]
    pruned = [n.id for n in graph.pruned()]
    assert pruned and sorted(page.ids("#graph .node.s-pruned")) == pruned
    backtracks = [n.id for n in graph.nodes() if n.kind == "backtrack"]
    assert len(backtracks) >= 2 and sorted(page.ids('#graph [data-kind="backtrack"]')) == backtracks
    page.page.hover(f'#graph [data-id="{pruned[0]}"]')
    assert "pruned: value 0.10 < 0.3" in page.page.text_content("#tooltip")
    page.page.click(f'#graph [data-id="{pruned[0]}"]')
    assert page.texts("#detail .error") == ["pruned: value 0.10 < 0.3"]


# --- selecting a node --------------------------------------------------------------------------------------
def test_clicking_a_node_shows_its_request_completion_answer_usage_and_verdict(pages, open_page):
    result, page = pages["sc"].result, open_page(pages["sc"].html)
    odd = next(n for n in result.graph.nodes() if n.answer == "41")

    page.page.click(f'#graph [data-id="{odd.id}"]')
    assert page.texts("#detail .completion") == ["Let me think step by step. Answer: 41"]
    assert any("What is 6 * 7?" in text for text in page.texts("#detail pre"))
    details = dict(zip(page.texts("#detail dt"), page.texts("#detail dd"), strict=True))
    assert details["answer"] == "41"
    assert details["prompt tokens"] == str(odd.usage.prompt_tokens)
    assert details["completion tokens"] == str(odd.usage.completion_tokens)
    assert details["latency"].endswith("ms")

    tree, page = pages["tree"].result, open_page(pages["tree"].html)
    accepted = tree.answer_path()[-1]
    page.page.click(f'#graph [data-id="{accepted.id}"]')
    assert "accepted" in page.texts("#detail .verdict-ok")[0]
    rejected = next(n for n in tree.graph.nodes() if n.kind == "verify" and not n.data["accepted"])
    page.page.click(f'#graph [data-id="{rejected.parents[0]}"]')
    assert "rejected" in page.texts("#detail .verdict-no")[0]
    assert page.texts("#detail .verdict-no + pre")[0].endswith("does not make 24")


def test_a_models_reasoning_is_shown_apart_from_its_answer(pages, open_page):
    result, page = pages["think"].result, open_page(pages["think"].html)
    call = next(n for n in result.graph.nodes() if n.request is not None)
    page.page.click(f'#graph [data-id="{call.id}"]')
    assert page.texts("#detail pre.reasoning") == ["6 times 7: 6 sevens are 42."]
    assert page.texts("#detail pre.completion") == ["The product is 42. Answer: 42"]


# --- the timeline --------------------------------------------------------------------------------------------
def test_the_timeline_draws_each_call_and_its_concurrency(pages, open_page):
    result, page = pages["sc"].result, open_page(pages["sc"].html)
    calls = [n.id for n in result.graph.nodes() if n.request is not None]
    assert sorted(page.ids("#timeline .call")) == calls
    lanes = page.page.eval_on_selector_all("#timeline .call", "els => new Set(els.map(e => e.getAttribute('y'))).size")
    assert lanes == 5  # the five samples were in flight together
    assert "at most 5 at once" in page.page.text_content("#timeline-note")
    page.page.click(f'#timeline [data-id="{calls[2]}"]')
    assert page.page.text_content("#detail h2") == f"#{calls[2]} generate"


# --- no network, and model output is text ------------------------------------------------------------------
def test_the_page_makes_no_network_request_and_its_policy_forbids_any(pages, open_page):
    page = open_page(pages["tree"].html)
    page.page.click("#zoom-fit")
    page.page.click("#zoom-answer")
    outcome = page.page.evaluate("fetch('http://127.0.0.1:9/beacon').then(() => 'sent', () => 'blocked')")
    assert outcome == "blocked"
    assert page.requests == [page.url]


def test_injected_markup_in_a_completion_runs_nothing_and_shows_as_text(pages, open_page):
    result, page = pages["inject"].result, open_page(pages["inject"].html)
    call = next(n for n in result.graph.nodes() if n.request is not None)
    page.page.click(f'#graph [data-id="{call.id}"]')
    page.page.wait_for_timeout(200)  # time for an onerror handler to have fired, had an <img> been made

    assert page.dialogs == []
    assert page.texts("#detail .completion") == [view_traces.INJECTION]
    assert page.texts(".question") == [f"Summarise {view_traces.INJECTION}"]
    counts = page.page.evaluate(
        "({scripts: document.scripts.length, images: document.images.length, links: document.links.length})"
    )
    assert counts == {"scripts": 2, "images": 0, "links": 0}
    assert page.requests == [page.url]


# --- many runs: the picker ----------------------------------------------------------------------------------
def test_the_run_picker_lists_every_run_and_search_narrows_it(pages, open_page):
    sc, tree = pages["bench-sc"].result, pages["bench-tree"].result
    page = open_page(pages["bench-sc"].html)

    assert len(page.texts(".run-item")) == 2
    page.page.fill("#run-search", "make 24")
    assert page.texts(".run-item .q") == ["Make 24 from 1 2 3 4"]
    assert page.page.text_content("#run-count") == "1 of 2 runs match"
    page.page.click(".run-item")
    page.page.wait_for_selector(f'body[data-ready="{tree.run_id}"]')
    assert sorted(page.ids("#graph [data-id]")) == [n.id for n in tree.graph.nodes()]
    page.page.fill("#run-search", "")
    page.page.click(".run-item >> nth=0")
    page.page.wait_for_selector(f'body[data-ready="{sc.run_id}"]')


# --- size -------------------------------------------------------------------------------------------------
def test_a_ten_thousand_node_run_renders_in_time_and_draws_what_scrolls_into_view(pages, open_page):
    nodes, page = pages["big"].nodes, open_page(pages["big"].html)

    # A loose sanity bound; the 2 s target is measured by benchmarks/viewer_render.py.
    assert page.load_s < 10
    viewer = page.page.evaluate("window.thinkloopViewer")
    assert viewer["nodes"] == nodes >= 10_000
    assert page.page.text_content("#graph-note").startswith(f"{nodes} nodes (drawn as they scroll into view")
    drawn = set(page.ids("#graph [data-id]"))
    assert 0 < len(drawn) == viewer["drawn"] < nodes
    # Scrolling to the far end draws the nodes there, and they can be selected.
    page.page.eval_on_selector("#graph-scroll", "box => { box.scrollTop = box.scrollHeight; }")
    gone = f"!document.querySelector('#graph [data-id=\"{min(drawn)}\"]')"
    # Polled from here: wait_for_function evaluates its predicate with eval, which the page's CSP refuses.
    deadline = time.monotonic() + 10
    while not page.page.evaluate(f"window.thinkloopViewer.drawn > 0 && {gone}"):
        assert time.monotonic() < deadline, "the far end of the graph was never drawn"
        page.page.wait_for_timeout(50)
    later = page.ids("#graph [data-id]")
    assert later and not drawn & set(later)
    page.page.click(f'#graph [data-id="{later[-1]}"]')
    assert page.page.text_content("#detail h2").startswith(f"#{later[-1]} ")
