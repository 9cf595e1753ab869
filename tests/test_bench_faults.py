"""``thinkloop bench run`` when things go wrong, run as a user runs it (a child process, a real server):
a server that is not running, SIGKILL at random points, Ctrl-C. Nothing finished is lost, nothing is
recomputed (counted at the server) and nothing is recorded twice (issue 16, item 11 and the fault suite)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from thinkloop.backends.server import free_port
from thinkloop.bench.store import read_records
from thinkloop.testing.faults import FaultyServerProcess
from thinkloop.testing.mock_server import MockConfig


def sums(path: Path, count: int) -> Path:
    """A data set of distinct sums, so the server can count requests per problem."""
    path.write_text(
        "".join(json.dumps({"id": f"s{i}", "q": f"What is {i} + 1000?", "a": i + 1000}) + "\n" for i in range(count))
    )
    return path


def bench_command(data: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
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
        "--id-field",
        "id",
        "--strategy",
        "direct",
        "--model",
        "mock",
        "--base-url",
        base_url,
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def server_stats(server: FaultyServerProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"{server.root}/stats", timeout=10) as response:
        return json.loads(response.read())


def per_question(server: FaultyServerProcess) -> Counter[str]:
    return Counter(server_stats(server)["requests_by_question"])  # type: ignore[arg-type]


def key_of(problem_id: str) -> str:
    return f"{int(problem_id.removeprefix('s'))}+1000"


# --- a dead server is found out early (item 11) -------------------------------------------------------------


def test_a_dead_server_stops_the_run_early_and_the_same_command_resumes_once_it_is_up(tmp_path: Path) -> None:
    data, out = sums(tmp_path / "sums.jsonl", 40), tmp_path / "r.jsonl"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    config = MockConfig(p_right=1.0, filler_words=4)
    with FaultyServerProcess(config, port=port) as server:  # up: the first 6 problems finish
        first = subprocess.run(
            bench_command(data, out, base_url, "--limit", "6"), capture_output=True, text=True, timeout=60
        )
        assert first.returncode == 0, first.stderr
        assert sum(per_question(server).values()) == 6
    finished = read_records(out)
    assert [r.status for r in finished] == ["done"] * 6

    started = time.monotonic()  # down: 40 problems would take minutes of retries; it stops after a few
    dead = subprocess.run(
        bench_command(data, out, base_url, "--concurrency", "5"), capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - started
    assert dead.returncode == 1
    assert dead.stderr.count("\n") == 1, dead.stderr
    # The gate (issue 25): the server is checked before the grid, so nothing is even tried.
    assert dead.stderr.startswith(
        f"thinkloop bench: error: stopped before the first problem: mock at http://127.0.0.1:{port}/v1"
    ), dead.stderr
    assert "cannot reach" in dead.stderr and "run the same command again once it answers" in dead.stderr
    assert elapsed < 30, f"the dead server took {elapsed:.0f} s to find out"
    assert read_records(out) == finished  # what finished is kept, and no failure was written

    with FaultyServerProcess(config, port=port) as server:  # up again: the same command does the rest
        resumed = subprocess.run(bench_command(data, out, base_url), capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        counts = per_question(server)
    records = read_records(out)
    assert Counter(r.id for r in records) == Counter({f"s{i}": 1 for i in range(40)})
    assert all(r.status == "done" and r.correct for r in records)
    assert set(counts) == {key_of(f"s{i}") for i in range(6, 40)} and set(counts.values()) == {1}


# --- SIGKILL and Ctrl-C ----------------------------------------------------------------------------------------


def kill_and_resume(tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    """Kill ``bench run`` with SIGKILL at ``trials`` random points (after a random number of new records, plus
    a random fraction of a request), then let it finish. Returns the figures: kills, problems, requests the
    server answered, problems sent twice (those in flight at a kill)."""
    rng = random.Random(seed)
    problems = 12 + 4 * trials
    data, out = sums(tmp_path / "sums.jsonl", problems), tmp_path / "r.jsonl"
    with FaultyServerProcess(MockConfig(p_right=1.0, filler_words=4, latency=0.1)) as server:
        command = bench_command(data, out, server.base_url, "--concurrency", "3")
        kills = 0
        recorded_before: set[str] = set()
        counts_before: Counter[str] = Counter()
        for _ in range(trials):
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wanted = len(recorded_before) + rng.randint(1, 4)
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if out.exists() and out.read_bytes().count(b"\n") >= wanted:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.1))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait()
            records = read_records(out)
            counts = per_question(server)
            # 0 recomputed: no problem recorded before this run was sent again
            assert all(counts[key_of(i)] == counts_before[key_of(i)] for i in recorded_before), counts
            assert set(Counter(r.id for r in records).values()) == {1}  # 0 duplicated
            assert recorded_before <= {r.id for r in records}  # 0 lost
            recorded_before, counts_before = {r.id for r in records}, counts
        final = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        counts = per_question(server)
    records = read_records(out)
    assert Counter(r.id for r in records) == Counter({f"s{i}": 1 for i in range(problems)})  # 0 lost, 0 twice
    assert all(r.status == "done" and r.correct for r in records)
    assert all(counts[key_of(i)] == counts_before[key_of(i)] for i in recorded_before)
    twice = sum(1 for c in counts.values() if c > 1)
    assert twice <= 3 * kills  # only problems in flight at a kill (3 at a time) were sent again
    return {"kills": kills, "problems": problems, "requests": sum(counts.values()), "sent_twice": twice}


def test_three_sigkills_lose_nothing_recompute_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    figures = kill_and_resume(tmp_path, trials=3, seed=16)
    assert figures["kills"] == 3


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twenty_sigkills_at_random_points(tmp_path: Path) -> None:
    figures = kill_and_resume(tmp_path, trials=20, seed=1616)
    sys.stderr.write(f"SIGKILL figures: {figures}\n")
    assert figures["kills"] == 20


INTERRUPTIBLE = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('thinkloop', run_name='__main__', alter_sys=True)"
)
"""``python -m thinkloop`` with Ctrl-C handled as Python does by default, even where SIGINT was ignored."""


def test_ctrl_c_exits_within_five_seconds_with_everything_finished_saved(tmp_path: Path) -> None:
    data, out = sums(tmp_path / "sums.jsonl", 200), tmp_path / "r.jsonl"
    with FaultyServerProcess(MockConfig(p_right=1.0, filler_words=4, latency=0.3)) as server:
        command = bench_command(data, out, server.base_url, "--concurrency", "4")
        # Ctrl-C as a terminal sends it, whatever this process inherited: a job a shell starts in the background
        # without job control (`bash .ci/run &`) ignores SIGINT, and so would the command, running to the end.
        assert command[1:3] == ["-m", "thinkloop"]
        command[1:3] = ["-c", INTERRUPTIBLE]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 8):
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before Ctrl-C"
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - interrupted
        answered = server_stats(server)["requests"]
    assert took < 5, f"Ctrl-C took {took:.1f} s"
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "thinkloop bench: interrupted; re-run the same command to resume"
    records = read_records(out)
    assert len(records) >= 8 and all(r.status == "done" for r in records)
    assert len({r.id for r in records}) == len(records)
    assert answered >= len(records)  # every saved record was answered; none is invented
