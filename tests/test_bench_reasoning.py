"""``thinkloop bench run`` against open reasoning servers (the mock's reasoning mode): the records and the
table say how many reasoning tokens each config spent and whether the server counted them or thinkloop
estimated them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from thinkloop.bench.report import load_summaries
from thinkloop.bench.store import read_records
from thinkloop.testing.mock_reasoner import ReasoningServerProcess
from thinkloop.testing.mock_server import MockConfig


def test_bench_rows_show_reasoning_tokens_reported_or_estimated(tmp_path: Path) -> None:
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} + 30?", "a": i + 30}) + "\n" for i in range(3)))
    out = tmp_path / "r.jsonl"
    config = MockConfig(p_right=1.0, filler_words=40)
    with (
        ReasoningServerProcess(config, shape="reasoning_content", report_reasoning_tokens=True) as counted,
        ReasoningServerProcess(config, shape="think-tags") as uncounted,
    ):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "thinkloop",
                "bench",
                "run",
                str(data),
                "--question-field",
                "q",
                "--answer-field",
                "a",
                "--strategy",
                "direct",
                "--model",
                "r1-counted",
                "--model",
                "r1-tags",
                "--base-url",
                counted.base_url,
                "--base-url",
                uncounted.base_url,
                "--out",
                str(out),
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 0, run.stderr
    records = {r.model: r for r in read_records(out) if r.id == "1"}
    assert all(r.correct for r in read_records(out))  # the decoy in the thinking never became the answer
    reported, estimated = records["r1-counted"], records["r1-tags"]
    assert reported.reasoning_tokens == 40 + 12 and reported.estimated_reasoning_tokens == 0
    assert 0 < estimated.estimated_reasoning_tokens == estimated.reasoning_tokens <= estimated.completion_tokens
    summaries = {s.model: s for s in load_summaries(out)}
    assert summaries["r1-counted"].reasoning_counted == "reported"
    assert summaries["r1-tags"].reasoning_counted == "estimated"
    report = subprocess.run(
        [sys.executable, "-m", "thinkloop", "bench", "report", str(out), "--format", "markdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = {line.split(" | ")[2]: line.split(" | ")[8] for line in report.splitlines()[2:]}
    assert rows == {"r1-counted": "52", "r1-tags": f"~{summaries['r1-tags'].mean_reasoning_tokens:.0f} est."}
