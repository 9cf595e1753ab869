"""The viewer page as written: its data (from real runs), its safety (escaping, policy), the commands."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import view_traces
from thinkloop import Budget
from thinkloop.cli import main
from thinkloop.runtime.budget import Price
from thinkloop.runtime.trace import graph_from_events, load_trace
from thinkloop.testing.mock_server import MockConfig, MockServerProcess
from thinkloop.view import render_trace_html
from thinkloop.view.document import build_document
from thinkloop.view.page import embed_json


class Page(HTMLParser):
    """The elements of a page that matter for safety: scripts, styles, the policy, anything that loads."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def data_of(html: str) -> dict:
    match = re.search(r'<script id="trace-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


# --- the data the page draws ---------------------------------------------------------------------------------
def test_a_self_consistency_run_becomes_its_nodes_path_totals_and_limits(tmp_path: Path) -> None:
    result = view_traces.self_consistency(tmp_path / "sc.jsonl")
    document = data_of(render_trace_html(tmp_path / "sc.jsonl"))
    (run,) = document["runs"]

    assert run["id"] == result.run_id
    assert (run["question"], run["answer"], run["stop_reason"]) == ("What is 6 * 7?", "42", "completed")
    assert [n["id"] for n in run["nodes"]] == [n.id for n in result.graph.nodes()]
    assert run["path"] == [n.id for n in result.answer_path()]
    totals, usage = run["totals"], result.usage
    assert (totals["calls"], totals["prompt_tokens"], totals["completion_tokens"], totals["tokens"]) == (
        usage.calls,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
    assert run["limits"] == {"tokens": 20_000, "calls": 20}
    assert run["seconds"] == pytest.approx(result.latency_s, abs=0.05)
    calls = [n for n in run["nodes"] if "request" in n]
    assert len(calls) == 5
    for node in calls:
        role, text = node["request"]["messages"][-1]
        assert role == "user" and "What is 6 * 7?" in document["texts"][text]
        assert node["choices"][0]["text"].startswith("Let me think")
        assert 0 <= node["t0"] <= node["t1"] - 0.015  # each call slept 20 ms between its two events
    # The five samples overlapped: each started before any ended.
    assert max(n["t0"] for n in calls) < min(n["t1"] for n in calls)


def test_a_tree_search_keeps_its_pruned_reasons_backtracks_and_verdicts(tmp_path: Path) -> None:
    result = view_traces.tree_search(tmp_path / "tree.jsonl")
    (run,) = data_of(render_trace_html(tmp_path / "tree.jsonl"))["runs"]
    nodes = {n["id"]: n for n in run["nodes"]}

    assert {i for i, n in nodes.items() if n["status"] == "pruned"} == {n.id for n in result.graph.pruned()}
    assert any(n["data"]["pruned"] == "value 0.10 < 0.3" for n in nodes.values() if n["status"] == "pruned")
    assert sum(n["kind"] == "backtrack" for n in nodes.values()) >= 2
    verdicts = [n["data"]["accepted"] for n in nodes.values() if n["kind"] == "verify"]
    assert True in verdicts and False in verdicts
    assert run["path"][-1] == run["answer_node"]


def test_a_trace_without_timestamps_is_drawn_in_event_order(tmp_path: Path) -> None:
    view_traces.self_consistency(tmp_path / "sc.jsonl")
    events = [event.model_copy(update={"ts": None}) for event in load_trace(tmp_path / "sc.jsonl")]
    document = build_document(events)
    assert document["clock"] == "order"
    (run,) = document["runs"]
    assert run["seconds"] is None
    assert all(isinstance(n["t0"], float) and n["t0"] <= n["t1"] for n in run["nodes"])


def test_one_run_of_many_and_an_unknown_run(tmp_path: Path) -> None:
    trace = tmp_path / "both.jsonl"
    view_traces.self_consistency(trace)
    tree = view_traces.tree_search(trace)  # appended to the same file
    assert [r["id"] for r in data_of(render_trace_html(trace))["runs"]][1] == tree.run_id
    assert [r["id"] for r in data_of(render_trace_html(trace, run_id=tree.run_id))["runs"]] == [tree.run_id]
    with pytest.raises(ValueError, match=re.escape("run 'nope' is not in the trace")):
        render_trace_html(trace, run_id="nope")


def test_a_priced_run_shows_its_dollars_and_an_older_trace_is_priced_from_its_calls(tmp_path: Path) -> None:
    price = Price(input=1.0, output=2.0)
    result = view_traces.self_consistency(tmp_path / "sc.jsonl", budget=Budget(tokens=20_000, price=price))
    events = load_trace(tmp_path / "sc.jsonl")
    (run,) = build_document(events)["runs"]
    assert result.cost is not None and run["totals"]["dollars"] == pytest.approx(result.cost)
    assert run["limits"] == {"tokens": 20_000}

    # A trace whose end carries no totals (written before it did) is summed and priced from its calls.
    older = events[-1].model_copy(update={"usage": None, "cost": None})
    (run,) = build_document([*events[:-1], older])["runs"]
    totals = run["totals"]
    assert totals["calls"] == result.usage.calls and totals["prompt_tokens"] == result.usage.prompt_tokens
    assert totals["dollars"] == pytest.approx(result.cost)


# --- safety: data is inert, nothing loads ------------------------------------------------------------------
@given(st.text())
def test_embedded_json_cannot_close_its_script_and_reads_back(text: str) -> None:
    embedded = embed_json({"text": text, "html": f"</script>{text}<!--"})
    assert not set(embedded) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(embedded) == {"text": text, "html": f"</script>{text}<!--"}


def test_the_page_is_self_contained_under_a_strict_policy(tmp_path: Path) -> None:
    view_traces.injected(tmp_path / "inject.jsonl")
    html = render_trace_html(tmp_path / "inject.jsonl")
    page = Page(html)

    (policy,) = [a["content"] for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert policy is not None
    rules = dict(rule.strip().split(" ", 1) for rule in policy.split(";"))
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{20,})'", rules["script-src"]).group(1)
    assert rules["default-src"] == "'none'" and rules["connect-src"] == "'none'" and rules["img-src"] == "data:"
    assert rules["style-src"] == f"'nonce-{nonce}'"
    scripts = page.all("script")
    assert scripts == [{"id": "trace-data", "type": "application/json"}, {"nonce": nonce}]
    assert [a.get("nonce") for a in page.all("style")] == [nonce]
    # Nothing that could load: no src, no stylesheet link, no href but the empty data: icon.
    assert not [a for _, a in page.tags if "src" in a]
    assert [a["href"] for _, a in page.tags if "href" in a] == ["data:,"]
    # The hostile completion and question are inside the JSON block only, escaped.
    assert html.count("<script") == 2 and html.count("</script>") == 2
    assert "alert(1)" in page.script_text[0] and "javascript:alert(3)" in page.script_text[0]
    assert data_of(html)["runs"][0]["question"] == f"Summarise {view_traces.INJECTION}"
    sinks = re.findall(r"\.(?:inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function", html)
    assert sinks == []  # the script has no way to turn text into markup or code


def test_two_pages_get_different_nonces(tmp_path: Path) -> None:
    view_traces.reasoning(tmp_path / "t.jsonl")
    nonces = {re.search(r"'nonce-([^']+)'", render_trace_html(tmp_path / "t.jsonl")).group(1) for _ in range(2)}
    assert len(nonces) == 2


# --- the commands ---------------------------------------------------------------------------------------------
def test_view_writes_the_page_beside_the_trace_or_where_told(tmp_path: Path, capsys) -> None:
    view_traces.self_consistency(tmp_path / "run.jsonl")
    assert main(["view", str(tmp_path / "run.jsonl")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'run.html'}\n"
    assert data_of((tmp_path / "run.html").read_text())["runs"][0]["answer"] == "42"

    assert main(["view", str(tmp_path / "run.jsonl"), "-o", str(tmp_path / "elsewhere.html")]) == 0
    assert (tmp_path / "elsewhere.html").is_file()


def test_view_of_a_bench_traces_directory_holds_every_run(tmp_path: Path, capsys) -> None:
    first = view_traces.self_consistency(tmp_path / "traces" / "sc" / "p1.jsonl")
    second = view_traces.tree_search(tmp_path / "traces" / "tree" / "p1.jsonl")
    assert main(["view", str(tmp_path / "traces")]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page == tmp_path / "traces" / "traces.html"
    assert [r["id"] for r in data_of(page.read_text())["runs"]] == [first.run_id, second.run_id]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "no such trace file: {d}/missing.jsonl"),
        (
            lambda d: (d / "missing.jsonl").write_text('{"kind": "node"}\n{}\n'),
            "thinkloop view: error: {d}/missing.jsonl:1: not a trace event:",
        ),
        (lambda d: (d / "missing.jsonl").mkdir(), "no *.jsonl trace files under {d}/missing.jsonl"),
    ],
)
def test_view_errors_are_one_line(tmp_path: Path, capsys, setup, message: str) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    assert main(["view", str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert message.format(d=tmp_path) in err


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockConfig(p_right=1.0, model="mock")) as server:
        yield server


def test_ask_view_writes_the_page_beside_the_trace(mock_server: MockServerProcess, tmp_path: Path, capsys) -> None:
    trace = tmp_path / "ask.jsonl"
    code = main(
        [
            "ask",
            "What is 2 + 3?",
            "--base-url",
            mock_server.base_url,
            "--model",
            "mock",
            "--strategy",
            "sc:n=3",
            "--trace",
            str(trace),
            "--view",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == f"view: {tmp_path / 'ask.html'}\n"
    (run,) = data_of((tmp_path / "ask.html").read_text())["runs"]
    assert run["answer"] == "5"
    assert [n["id"] for n in run["nodes"]] == [n.id for n in graph_from_events(load_trace(trace)).nodes()]


def test_ask_view_without_a_trace_writes_a_temporary_page(mock_server: MockServerProcess, capsys) -> None:
    code = main(["ask", "What is 2 + 3?", "--base-url", mock_server.base_url, "--model", "mock", "--view", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["answer"] == "5"  # stdout stays the JSON result alone
    page = Path(captured.err.removeprefix("view: ").strip())
    try:
        document = data_of(page.read_text())
        assert document["clock"] == "wall"  # the recorded events carry their times
        assert document["runs"][0]["answer"] == "5"
    finally:
        page.unlink()


def test_each_written_event_carries_the_time_it_was_written(tmp_path: Path) -> None:
    started = time.time()
    view_traces.tree_search(tmp_path / "tree.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "tree.jsonl").read_text().splitlines()]
    stamps = [line["ts"] for line in lines]
    assert all(isinstance(ts, float) for ts in stamps)
    assert stamps == sorted(stamps) and started <= stamps[0] <= stamps[-1] <= time.time()
    assert [e.ts for e in load_trace(tmp_path / "tree.jsonl")] == stamps
