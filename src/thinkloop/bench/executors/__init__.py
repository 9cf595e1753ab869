"""Where a benchmark's items run: in this process (the default) or on a pool of Ray actors.

An executor takes the runner's pending (config, problem) items and hands every record to one ``write``
callback; the runner owns that callback, so the results file has one writer whatever runs the items, and
resume, settings fingerprints, ``--retry-failed`` and reports behave the same.

::

    specs.py          BackendSpec / ConfigSpec: what a remote worker builds its own backends and configs from
    ray_executor.py   RayExecutor: the driver side (a pool of actors, bounded items in flight, resends on death)
    ray_worker.py     BenchWorker: the actor (its own backends and engines, on its own event loop)

From Python::

    from thinkloop.bench import run_benchmark
    from thinkloop.bench.executors import RayExecutor

    await run_benchmark([gsm8k], ["sc:n=8"], [OpenAIBackend("m", base_url=url)], "out.jsonl",
                        concurrency=16, executor=RayExecutor("auto", actors=8))

Ray is optional (``pip install 'thinkloop[ray]'``); nothing here imports it until a run starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from thinkloop.bench.datasets import Problem
    from thinkloop.bench.runner import Config, Runner
    from thinkloop.bench.store import Record


class Executor(Protocol):
    """Runs a runner's pending items somewhere and passes each record to ``write`` as soon as it exists.

    ``write`` appends to the store and updates the summary and progress; an executor calls it once per item,
    from the runner's event loop, and never writes records any other way.
    """

    async def run(
        self, runner: Runner, todo: Sequence[tuple[Config, Problem]], write: Callable[[Record], None]
    ) -> None: ...


_EXPORTS = {
    "RayExecutor": "ray_executor",
    "start_local_ray": "ray_executor",
    "BackendSpec": "specs",
    "ConfigSpec": "specs",
    "Secret": "specs",
    "backend_spec": "specs",
}

__all__ = sorted(["Executor", *_EXPORTS])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'thinkloop.bench.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(f"thinkloop.bench.executors.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
