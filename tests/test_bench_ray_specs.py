"""What travels to a Ray actor, and the actor itself, without starting Ray: backend recipes rebuild the same
backend (its key never shown), configs rebuild the same id and settings, the worker writes the same record as
one process, and without Ray installed ``--ray`` says how to install it."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from thinkloop.backends.openai import OpenAIBackend
from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.executors.ray_worker import BenchWorker
from thinkloop.bench.executors.specs import BackendSpec, Secret, backend_spec, ship
from thinkloop.bench.runner import Runner, backend_label, make_configs
from thinkloop.bench.store import ResultStore
from thinkloop.exceptions import ConfigurationError
from thinkloop.pricing import PriceTable
from thinkloop.runtime.engine import Engine

KEY = "sk-test-secret-key-0123456789"
PROBLEMS = (
    Problem(id="a", question="What is 2 + 3?", answer="5", line=1),
    Problem(id="b", question="What is 4 + 4?", answer="8", line=2),
)
DATASET = Dataset(name="toy", path=Path("toy.jsonl"), problems=PROBLEMS)


def reply(request: object) -> str:
    return "The answer is 5."


@pytest.mark.anyio
async def test_an_openai_backend_travels_as_a_recipe_that_never_shows_its_key() -> None:
    live = OpenAIBackend(
        "m",
        base_url="http://127.0.0.1:9/v1",
        api_key=KEY,
        max_concurrency=7,
        max_retries=1,
        timeout=12.5,
        honours_n=True,
    )
    spec = backend_spec(live)
    assert KEY not in repr(spec) and KEY not in str(spec.kwargs)
    rebuilt = pickle.loads(pickle.dumps(spec)).build()
    try:
        assert backend_label(rebuilt) == backend_label(live) == "m@127.0.0.1:9/v1"
        assert rebuilt.capabilities == live.capabilities
        assert rebuilt._client.api_key == KEY  # the rebuilt client can still authenticate
        assert (rebuilt.capabilities.retry.max_retries, rebuilt._client.timeout) == (1, 12.5)
    finally:
        await live.aclose()
        await rebuilt.aclose()
    learning = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")  # learns whether the server honours n
    assert backend_spec(learning).kwargs["honours_n"] is None
    await learning.aclose()


def test_a_secret_shows_nothing() -> None:
    secret = Secret(KEY)
    assert KEY not in repr(secret) and KEY not in str(secret) and KEY not in f"{secret}"
    assert pickle.loads(pickle.dumps(secret)).reveal() == KEY


def test_a_backend_that_cannot_travel_is_named_before_any_call() -> None:
    lock = threading.Lock()

    def locked_reply(request: object) -> str:
        with lock:
            return "The answer is 5."

    backend = ScriptedBackend(locked_reply, name="holds-a-lock")
    with pytest.raises(ConfigurationError, match=r"backend 'holds-a-lock' \(ScriptedBackend\) cannot be sent"):
        backend_spec(backend)
    # a recipe given for its label is used instead
    configs = make_configs([DATASET], ["direct"], [backend])
    _, specs = ship(configs, {"holds-a-lock": BackendSpec(ScriptedBackend, (reply,), {"name": "holds-a-lock"})})
    assert specs["backend-0"].build().name == "holds-a-lock"


@pytest.mark.anyio
async def test_the_worker_builds_the_same_configs_and_records_as_one_process(tmp_path: Path) -> None:
    backends = [ScriptedBackend(reply, name="s1"), ScriptedBackend(reply, name="s2")]
    configs = make_configs([DATASET], ["direct", "sc:n=3"], backends, budget_tokens=500)
    shipped, specs = ship(configs)
    assert len(specs) == 2  # one recipe per backend, shared by its configs
    worker = BenchWorker(
        pickle.loads(pickle.dumps(shipped)), specs, concurrency=2, prices=PriceTable.default(), traces_dir=None
    )
    assert await worker.describe() == [(c.id, c.settings) for c in configs]
    with ResultStore(tmp_path / "r.jsonl") as store:
        runner = Runner(store)
        for index, config in enumerate(configs):
            here = await runner.run_one(Engine(config.backend), config, PROBLEMS[0])
            there = await worker.run(index, PROBLEMS[0])
            assert there.model_dump(exclude={"latency_s"}) == here.model_dump(exclude={"latency_s"})
    await worker.close()


def _without_ray(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


def test_without_ray_the_cli_says_how_to_install_it(tmp_path: Path) -> None:
    done = _without_ray(
        """
        from thinkloop.cli.bench import standalone
        sys.exit(standalone(["run", "simulated", "--simulated", "0.6", "--limit", "3", "--strategy", "direct",
                             "--out", "r.jsonl", "--ray"]))
    """,
        tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "thinkloop bench: error: Ray is not installed: pip install 'thinkloop[ray]'"
    assert not (tmp_path / "r.jsonl").exists()  # refused before anything was opened


def test_without_ray_run_benchmark_says_how_to_install_it(tmp_path: Path) -> None:
    done = _without_ray(
        """
        import anyio
        from thinkloop.bench import run_benchmark
        from thinkloop.bench.executors import RayExecutor
        from thinkloop.bench.simulated import SimulatedBackend, simulated_dataset
        from thinkloop.exceptions import ConfigurationError

        data = simulated_dataset(3)
        try:
            anyio.run(lambda: run_benchmark([data], ["direct"], [SimulatedBackend.for_dataset(data)], "r.jsonl",
                                            executor=RayExecutor()))
        except ConfigurationError as exc:
            print(exc)
    """,
        tmp_path,
    )
    assert done.stdout.strip() == "Ray is not installed: pip install 'thinkloop[ray]'", done.stderr


def test_ray_actors_needs_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.cli.bench import standalone

    args = [
        "run",
        "simulated",
        "--simulated",
        "0.6",
        "--limit",
        "3",
        "--strategy",
        "direct",
        "--out",
        str(tmp_path / "r.jsonl"),
        "--ray-actors",
        "2",
    ]
    assert standalone(args) == 1
    assert capsys.readouterr().err.strip() == "thinkloop bench: error: --ray-actors needs --ray"
