"""The runner: one record per (config, problem), resume, failures kept apart from wrong answers, and a
benchmark killed with SIGKILL that finishes on re-run with every problem recorded exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.report import summarize
from thinkloop.bench.runner import Runner, make_configs, run_benchmark
from thinkloop.bench.store import ResultStore, read_records
from thinkloop.exceptions import BackendError
from thinkloop.runtime.trace import graph_from_events, load_trace
from thinkloop.types import ChatRequest

pytestmark = pytest.mark.anyio

PROBLEMS = {
    "p1": ("How many apples?", "9 (apples)"),
    "p2": ("Area of a 7 by 2 box?", "14.0"),
    "p3": ("What is 2 + 2?", "4"),
    "p4": ("What is 10 - 7?", "3"),
}
REPLIES = {
    "How many apples?": "Answer: 9",
    "Area of a 7 by 2 box?": "Answer: 14",
    "What is 2 + 2?": "Answer: 5",
    "What is 10 - 7?": "Answer: 3",
}


def dataset(ids: list[str] | None = None) -> Dataset:
    chosen = ids or list(PROBLEMS)
    problems = tuple(
        Problem(id=i, question=PROBLEMS[i][0], answer=PROBLEMS[i][1], line=n + 1) for n, i in enumerate(chosen)
    )
    return Dataset(name="toy", path=Path("toy.jsonl"), problems=problems)


def question_of(request: ChatRequest) -> str:
    return next(m.content for m in request.messages if m.role == "user")


def answering(fail: set[str] = frozenset(), **options: object) -> ScriptedBackend:
    def reply(request: ChatRequest) -> str:
        question = question_of(request)
        if question in fail:
            raise BackendError("server answered 503: overloaded")
        return REPLIES[question]

    return ScriptedBackend(reply, **options)  # type: ignore[arg-type]


async def test_one_record_per_problem_with_every_field(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    summary = await run_benchmark([dataset()], ["direct", "cot"], [answering()], out, traces_dir=tmp_path / "t")
    assert (summary.ran, summary.skipped, summary.failed, summary.correct) == (8, 0, 0, 6)
    records = read_records(out)
    assert [(r.strategy, r.id) for r in records] == [(s, i) for s in ("direct", "cot") for i in PROBLEMS]
    first = records[0]
    assert first.config == "toy | direct | scripted"
    assert (first.prediction, first.gold, first.correct, first.status) == ("9", "9 (apples)", True, "done")
    assert first.calls == 1 and first.prompt_tokens > 0 and first.completion_tokens == 2
    assert first.stop_reason == "completed" and first.cost == 0.0  # a local model costs nothing unless priced
    assert [r.correct for r in records[:4]] == [True, True, False, True]  # "14.0" equals 14: compared by value
    events = load_trace(first.trace)  # type: ignore[arg-type]
    assert graph_from_events(events).nodes()[-1].text == "Answer: 9"
    assert events[-1].kind == "run_finished" and events[-1].answer == "9"


async def test_re_running_skips_what_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    await run_benchmark([dataset(["p1", "p2"])], ["direct"], [answering()], out)
    backend = answering()
    summary = await run_benchmark([dataset()], ["direct"], [backend], out)
    assert (summary.ran, summary.skipped) == (2, 2)
    assert sorted(question_of(r) for r in backend.requests) == ["What is 10 - 7?", "What is 2 + 2?"]
    assert Counter(r.key for r in read_records(out)) == Counter({("toy | direct | scripted", i): 1 for i in PROBLEMS})


async def test_a_failure_is_recorded_apart_and_only_it_is_retried(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    summary = await run_benchmark([dataset()], ["direct"], [answering(fail={"What is 2 + 2?"})], out)
    assert (summary.ran, summary.failed) == (4, 1)
    failed = [r for r in read_records(out) if r.status == "failed"]
    assert [(r.id, r.correct, r.stop_reason) for r in failed] == [("p3", None, "error")]
    assert "503: overloaded" in (failed[0].error or "")
    (row,) = summarize(read_records(out))
    assert (row.n, row.failed, row.correct, row.accuracy) == (3, 1, 3, 1.0)  # not counted as wrong

    again = answering()
    assert (await run_benchmark([dataset()], ["direct"], [again], out)).ran == 0  # a plain re-run skips it
    retry = await run_benchmark([dataset()], ["direct"], [again], out, retry_failed=True)
    assert retry.ran == 1 and [question_of(r) for r in again.requests] == ["What is 2 + 2?"]
    (row,) = summarize(read_records(out))  # the later record supersedes the failure
    assert (row.n, row.failed, row.correct) == (4, 0, 3)


async def test_a_strategy_that_raises_is_a_failed_record_not_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    broken = ScriptedBackend(lambda request: 1 / 0)  # type: ignore[arg-type, return-value]
    summary = await run_benchmark([dataset(["p1"])], ["direct"], [broken], out)
    (only,) = read_records(out)
    assert summary.failed == 1 and only.status == "failed" and "ZeroDivisionError" in (only.error or "")


async def test_concurrency_is_a_limit_per_backend(tmp_path: Path) -> None:
    slow, other = answering(latency=0.02), answering(latency=0.02, name="other")
    await run_benchmark([dataset()], ["direct", "cot"], [slow, other], tmp_path / "r.jsonl", concurrency=2)
    assert slow.max_in_flight == 2 and other.max_in_flight == 2
    assert len(slow.requests) == len(other.requests) == 8
    assert {r.model for r in read_records(tmp_path / "r.jsonl")} == {"scripted", "other"}


async def test_each_problem_has_its_own_token_budget(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    await run_benchmark([dataset()], ["sc:n=4"], [answering()], out, budget_tokens=40)
    records = read_records(out)
    assert all(r.status == "done" and r.total_tokens <= 40 for r in records)
    assert {r.stop_reason for r in records} == {"budget"}


async def test_pass_at_k_asks_whether_any_sample_was_right(tmp_path: Path) -> None:
    replies = iter(["Answer: 4", "Answer: 5", "Answer: 5", "Answer: 6"] * 2)
    backend = ScriptedBackend(lambda request: next(replies))
    await run_benchmark([dataset(["p3", "p4"])], ["sc:n=4"], [backend], tmp_path / "r.jsonl")
    right, wrong = read_records(tmp_path / "r.jsonl")
    assert (right.prediction, right.correct, right.k, right.pass_at_k) == ("5", False, 4, True)
    assert right.answers == ["4", "5", "5", "6"]
    assert (wrong.k, wrong.pass_at_k) == (4, False)
    (row,) = summarize([right, wrong])
    assert (row.pass_at_k, row.mean_k, row.accuracy) == (0.5, 4.0, 0.0)


def test_max_tokens_is_part_of_the_config_and_a_bad_spec_fails_before_any_call() -> None:
    backend = answering()
    (config,) = make_configs([dataset()], ["sc:n=8"], [backend], max_tokens=64)
    assert config.id == "toy | sc:max_tokens=64,n=8 | scripted"
    assert config.strategy.config.max_tokens == 64
    with pytest.raises(Exception, match="unknown option 'bogus'"):
        make_configs([dataset()], ["direct", "cot:bogus=1"], [backend])
    assert backend.requests == []


async def test_pending_honours_retry_failed(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    await run_benchmark([dataset()], ["direct"], [answering(fail={"How many apples?"})], out)
    configs = make_configs([dataset()], ["direct"], [answering()])
    with ResultStore(out) as store:
        assert Runner(store).pending(configs) == []
        assert [p.id for _, p in Runner(store, retry_failed=True).pending(configs)] == ["p1"]


async def test_a_record_made_under_other_settings_is_run_again(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    await run_benchmark([dataset(["p1", "p2"])], ["direct"], [answering()], out)
    (config,) = make_configs([dataset()], ["direct"], [answering()])
    first, second = read_records(out)
    assert first.settings == second.settings == config.settings
    with ResultStore(out) as store:  # as if p1 was measured before the strategy's defaults changed
        store.append(first.model_copy(update={"settings": "0123456789ab"}))
        store.append(second.model_copy(update={"settings": None}))  # files from before fingerprints: kept
        assert [p.id for _, p in Runner(store).pending([config])] == ["p1", "p3", "p4"]


# --- crash safety ------------------------------------------------------------------------------------------
def _bench(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "thinkloop",
        "bench",
        "run",
        "simulated",
        "--simulated",
        "0.6",
        "--limit",
        "30",
        "--simulated-latency",
        "0.03",
        "--strategy",
        "direct",
        "--strategy",
        "sc:n=3",
        "--out",
        str(out),
        "--quiet",
    ]


def test_a_benchmark_killed_with_sigkill_resumes_with_every_problem_recorded_once(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    process = subprocess.Popen(_bench(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 100
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 12:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the benchmark finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    partial = read_records(out)
    assert 12 <= len(partial) < 60

    finished = subprocess.run(_bench(out), capture_output=True, text=True, timeout=100)
    assert finished.returncode == 0, finished.stderr
    lines = out.read_text().splitlines()
    keys = Counter((json.loads(line)["config"], json.loads(line)["id"]) for line in lines)
    assert len(keys) == 60 and set(keys.values()) == {1}
    assert read_records(out)[: len(partial)] == partial  # nothing recorded before the kill was rewritten
