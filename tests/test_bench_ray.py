"""The Ray executor on a local 2-CPU Ray against the mock server: every item recorded exactly once, also when
an actor is killed mid-run, restarted, or every actor is lost; a SIGKILLed driver resumes; resume and reports
unchanged; nothing Ray starts listens beyond loopback.

One Ray session serves the whole module (Ray takes seconds to start) and is shut down at the end; a driver the
test kills is killed with its whole process group, so no Ray process outlives the tests. The module takes
about 50 s on 2 quiet cores (Ray's start is 7 s of it), a few minutes on busy ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

ray = pytest.importorskip("ray")

from thinkloop.backends.openai import OpenAIBackend  # noqa: E402
from thinkloop.bench.datasets import Dataset, Problem  # noqa: E402
from thinkloop.bench.executors import RayExecutor, start_local_ray  # noqa: E402
from thinkloop.bench.runner import run_benchmark  # noqa: E402
from thinkloop.bench.store import read_records  # noqa: E402
from thinkloop.cli.bench import standalone  # noqa: E402
from thinkloop.exceptions import ExecutorError  # noqa: E402
from thinkloop.testing import MockConfig, MockServerProcess, right_answer  # noqa: E402

pytestmark = pytest.mark.timeout(300)  # Ray's start and its worker processes are slow on a busy machine

STRATEGY = "direct"  # one request per item: the cheapest strategy keeps 2,000 items quick
SAMPLES = 1
CONCURRENCY = 8


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    start_local_ray(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockConfig(latency=0.0, filler_words=4)) as server:
        yield server


def sums(count: int, name: str = "sums") -> Dataset:
    problems = []
    for i in range(count):
        question = f"What is {i} + {i + 7}?"
        problems.append(Problem(id=f"q{i}", question=question, answer=str(right_answer(question)), line=i + 1))
    return Dataset(name=name, path=Path(f"<{name}>"), problems=tuple(problems))


def run(
    dataset: Dataset,
    out: Path,
    base_url: str,
    executor: RayExecutor,
    *,
    backend: str = "asyncio",
    check_server: bool = False,
    **options: Any,
) -> Any:
    async def go() -> Any:
        model = OpenAIBackend("mock", base_url=base_url, max_retries=0, check_server=check_server)
        try:
            return await run_benchmark([dataset], [STRATEGY], [model], out, executor=executor, **options)
        finally:
            await model.aclose()

    return anyio.run(go, backend=backend)


def kill_at(count: int, executor: RayExecutor, *, no_restart: bool = True) -> Callable[[Any], None]:
    """An ``on_record`` that kills the first actor when the ``count``-th record is written."""
    written = [0]

    def on_record(record: Any) -> None:
        written[0] += 1
        if written[0] == count:
            ray.kill(executor.handles[0], no_restart=no_restart)

    return on_record


def assert_each_once(out: Path, count: int) -> None:
    keys = Counter(r.key for r in read_records(out))
    assert len(keys) == count and set(keys.values()) == {1}


def test_nothing_ray_starts_listens_beyond_loopback(local_ray: Any) -> None:
    assert shutil.which("ss") is not None, "needs ss (iproute2; .ci/run installs it)"
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [line for line in lines if any(name in line for name in ('"raylet"', '"gcs_server"', '"ray::'))]
    assert ours, "found no listening Ray process"
    for line in ours:
        address = line.split()[3].rsplit(":", 1)[0]
        assert address in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"), line


def test_an_actor_killed_mid_run_loses_nothing_and_duplicates_nothing(
    local_ray: Any, mock: MockServerProcess, tmp_path: Path
) -> None:
    items = 2000
    out = tmp_path / "r.jsonl"
    executor = RayExecutor(actors=2)
    mock.reset()
    summary = run(
        sums(items), out, mock.base_url, executor, concurrency=CONCURRENCY, on_record=kill_at(items // 4, executor)
    )
    assert_each_once(out, items)
    assert summary.ran == items and summary.failed == 0
    assert all(r.status == "done" and r.calls == SAMPLES for r in read_records(out))
    # the killed actor held between 1 and CONCURRENCY items; each went out once more
    assert executor.actors_lost == 1 and 1 <= executor.resent <= CONCURRENCY
    requests = mock.stats()["requests"]
    assert items * SAMPLES <= requests <= items * SAMPLES + executor.resent * SAMPLES


def test_a_dead_server_stops_a_ray_run_in_one_line_and_writes_no_failures(local_ray: Any, tmp_path: Path) -> None:
    """The single process's gate holds under Ray: problems whose every call found no server are held back, and
    five in a row stop the run with one error naming the server, instead of a failed record per problem."""
    import socket

    from thinkloop.exceptions import BackendUnavailable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "r.jsonl"
    started = time.monotonic()
    line = r"^stopped: \d+ problems in a row could not reach mock at http://"
    with pytest.raises(BackendUnavailable, match=line) as err:
        run(sums(400), out, f"http://127.0.0.1:{port}/v1", RayExecutor(actors=2), concurrency=2)
    # five in a row close the gate; problems already in flight on the other actor may add to the streak
    assert 5 <= int(str(err.value).split()[1]) <= 5 + 2 * 2
    assert time.monotonic() - started < 120  # not 400 problems' worth of failures
    assert not out.exists() or read_records(out) == []


def test_the_server_check_runs_before_a_ray_run_as_in_one_process(local_ray: Any, tmp_path: Path) -> None:
    """With the check ``bench run`` turns on, a dead server stops a Ray run before any problem is dispatched."""
    import socket

    from thinkloop.exceptions import BackendUnavailable

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "r.jsonl"
    executor = RayExecutor(actors=2)
    with pytest.raises(BackendUnavailable, match=r"^stopped before the first problem: mock at http://"):
        run(sums(50), out, f"http://127.0.0.1:{port}/v1", executor, concurrency=2, check_server=True)
    assert not out.exists() or read_records(out) == []


def test_a_restarted_actor_takes_its_items_back_and_losing_every_actor_stops_the_run(
    local_ray: Any, mock: MockServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    executor = RayExecutor(actors=1)  # only the restarted actor can go on
    restart, remove = kill_at(15, executor, no_restart=False), kill_at(40, executor)

    def on_record(record: Any) -> None:
        restart(record)
        remove(record)

    with pytest.raises(ExecutorError, match=r"all 1 Ray actors died with \d+ items not run"):
        run(sums(100), out, mock.base_url, executor, concurrency=4, on_record=on_record)
    assert executor.actors_lost == 1 and executor.resent >= 2  # the restart was survived, the removal was not
    partial = read_records(out)
    assert 40 <= len(partial) < 100
    # the next run resumes; on trio the driver polls Ray instead of awaiting its futures: same records
    again = run(sums(100), out, mock.base_url, RayExecutor(actors=2), backend="trio", concurrency=4)
    assert again.skipped == len(partial) and again.ran == 100 - len(partial) and again.failed == 0
    assert_each_once(out, 100)
    assert read_records(out)[: len(partial)] == partial


def _bench_workers() -> list[str]:
    """Live bench actors of this module's Ray (their parent is the raylet this process started)."""
    table = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True, check=True)
    rows = [line.split(None, 3) for line in table.stdout.splitlines()]
    raylets = {pid for pid, ppid, _, args in rows if ppid == str(os.getpid()) and "raylet" in args}
    return [
        args
        for _, ppid, stat, args in rows
        if ppid in raylets and "ray::BenchWorker" in args and not stat.startswith("Z")
    ]


def _cli(out: Path, ray_option: list[str], limit: int) -> list[str]:
    return [
        "run",
        "simulated",
        "--simulated",
        "0.6",
        "--simulated-latency",
        "0.05",
        "--limit",
        str(limit),
        "--strategy",
        "sc:n=2",
        "--concurrency",
        "4",
        "--out",
        str(out),
        "--quiet",
        *ray_option,
    ]


def test_a_sigkilled_driver_resumes_through_the_cli_and_the_report_reads_it(
    local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.jsonl"
    address = ray.get_runtime_context().gcs_address  # the driver joins this module's Ray as a cluster
    command = [sys.executable, "-m", "thinkloop.cli.bench", *_cli(out, ["--ray", address, "--ray-actors", "2"], 200)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 30:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert len(_bench_workers()) == 2
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and anything it started
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
    partial = read_records(out)
    assert 30 <= len(partial) < 200
    deadline = time.monotonic() + 60  # Ray ends a dead driver's actors
    while time.monotonic() < deadline and _bench_workers():
        time.sleep(0.2)
    assert not _bench_workers()

    assert standalone(_cli(out, ["--ray"], 200)) == 0  # joins the Ray this process runs
    assert_each_once(out, 200)
    assert read_records(out)[: len(partial)] == partial
    capsys.readouterr()
    assert standalone(["report", str(out), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["problems"], row["failed"], row["mean_k"]) == (200, 0, 2)
