"""One writer per store (issue 25): a results file or a trace is written by one process at a time; the
second gets one line naming the first; only the holder repairs a torn last line; every write is checked.

Before: two ``bench run``s on one ``--out`` both sent and recorded most problems and exited 0; opening a
trace cut a line another process was still writing; a short last trace write went unnoticed.
"""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from test_bench_faults import bench_command, key_of, per_question, sums
from thinkloop import Budget, Direct, ScriptedBackend
from thinkloop.bench.store import ResultStore, read_records
from thinkloop.exceptions import StoreLocked
from thinkloop.runtime.trace import JsonlTraceSink, load_trace
from thinkloop.testing.faults import FaultyServerProcess
from thinkloop.testing.mock_server import MockConfig

HOLD = """
import sys
from pathlib import Path
path = Path(sys.argv[1])
{open}
path.open("ab").write(b'{{"run_id": "r", "kind": "node", "node": {{"id": 1, "ki')  # a line being written
print("holding", flush=True)
sys.stdin.read()  # until the test closes it
"""


def _holder(path: Path, opener: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(open=opener), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


def _release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=10)


@pytest.mark.parametrize("kind", ["trace", "results"])
def test_a_second_writer_is_refused_naming_the_first_and_the_line_in_progress_is_kept(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"{kind}.jsonl"
    opener = (
        "from thinkloop.runtime.trace import JsonlTraceSink\nsink = JsonlTraceSink(path)"
        if kind == "trace"
        else "from thinkloop.bench.store import ResultStore\nstore = ResultStore(path)"
    )
    holder = _holder(path, opener)
    try:
        before = path.read_bytes()
        with pytest.raises(StoreLocked, match=rf"already being written by process {holder.pid}"):
            JsonlTraceSink(path) if kind == "trace" else ResultStore(path)
        assert path.read_bytes() == before  # the torn line another process is still writing was not cut
    finally:
        _release(holder)
    if kind == "trace":
        JsonlTraceSink(path).close()  # the lock is free again: the holder's torn line is repaired now
    else:
        ResultStore(path).close()
    assert path.read_bytes() == b""


def test_writers_in_one_process_share_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    first, second = JsonlTraceSink(path), JsonlTraceSink(path)
    second.close()
    first.close()
    JsonlTraceSink(path).close()


def test_two_bench_runs_on_one_out_file_the_second_stops_with_one_line_and_nothing_is_sent_twice(
    tmp_path: Path,
) -> None:
    # 14 problems of 0.6 s each, one at a time: the first run is still writing when the second starts (a
    # second Python process starts in 1-3 s even on a loaded machine).
    data, out = sums(tmp_path / "sums.jsonl", 14), tmp_path / "r.jsonl"
    with FaultyServerProcess(MockConfig(p_right=1.0, filler_words=4, latency=0.6)) as server:
        first = subprocess.Popen(bench_command(data, out, server.base_url), stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while (not out.exists() or not out.read_bytes()) and time.monotonic() < deadline:
                time.sleep(0.05)  # the first run holds the file once its first record is in
            assert first.poll() is None, "the first run ended before the second could start"
            second = subprocess.run(
                bench_command(data, out, server.base_url), capture_output=True, text=True, timeout=120
            )
        finally:
            first.wait(timeout=120)
        counts = per_question(server)
    assert first.returncode == 0, first.stderr.read() if first.stderr else ""
    assert second.returncode == 1
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"already being written by process {first.pid}" in lines[0], second.stderr
    records = read_records(out)
    assert sorted(r.id for r in records) == sorted(f"s{i}" for i in range(14))
    assert counts == Counter({key_of(f"s{i}"): 1 for i in range(14)})


class _DiskFullOnFinish:
    """A trace file that writes only part of the run's last event, then finds the disk full."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.full = False

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        if b"run_finished" in data:
            self.full = True
            return self.inner.write(data[: len(data) // 2])
        return self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.anyio
async def test_a_short_last_trace_write_fails_the_run_instead_of_reading_completed(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    sink = JsonlTraceSink(path)
    sink._file = _DiskFullOnFinish(sink._file)  # type: ignore[assignment]
    with pytest.raises(OSError, match=rf"could not write to {path}.*wrote \d+ of \d+ bytes"):
        await Direct(max_tokens=16).run(
            "What is 2 + 2?", backend=ScriptedBackend(["Answer: 4"]), budget=Budget(tokens=1000), sinks=[sink]
        )
    assert not any(getattr(e, "kind", "") == "run_finished" for e in load_trace(path))
    JsonlTraceSink(path).close()  # the lock was given back, and the torn last line is repaired


@pytest.mark.anyio
async def test_a_bench_problem_whose_trace_cannot_be_written_is_a_failed_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thinkloop.bench.datasets import Dataset, Problem
    from thinkloop.bench.runner import make_configs, run_item
    from thinkloop.pricing import PriceTable
    from thinkloop.runtime.engine import Engine

    original = JsonlTraceSink.__init__

    def disk_full(self: JsonlTraceSink, path: Any) -> None:
        original(self, path)
        self._file = _DiskFullOnFinish(self._file)  # type: ignore[assignment]

    monkeypatch.setattr(JsonlTraceSink, "__init__", disk_full)
    backend = ScriptedBackend(lambda request: "Answer: 4")
    problem = Problem(id="p1", question="What is 2 + 2?", answer="4")
    dataset = Dataset(name="d", path=tmp_path / "d.jsonl", problems=(problem,))
    config = make_configs([dataset], ["direct"], [backend], max_tokens=16)[0]
    record = await run_item(
        Engine(backend), config, dataset.problems[0], prices=PriceTable.default(), traces_dir=tmp_path / "traces"
    )
    assert record.status == "failed" and "could not write" in (record.error or "")
