"""The Ray actor that runs benchmark items: its own backends, its own engines, its own event loop.

Ray runs an actor with ``async`` methods on an asyncio event loop of its own, so every item an actor holds
runs concurrently there, under the same anyio code as in one process (:func:`thinkloop.bench.runner.run_item`).
The actor never touches the results file: it returns each record to the driver, which writes it.

This module does not import Ray: the driver wraps :class:`BenchWorker` with ``ray.remote`` when it starts a
pool, so the class stays importable (and testable) without Ray.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from thinkloop.bench.datasets import Problem
from thinkloop.bench.executors.specs import BackendSpec, ConfigSpec
from thinkloop.bench.health import ProblemCalls
from thinkloop.bench.runner import run_item
from thinkloop.bench.store import Record
from thinkloop.pricing import PriceTable
from thinkloop.runtime.engine import Engine


class BenchWorker:
    """Runs items for the configs it was given; one :class:`Engine` per backend, shared by its items.

    Args:
        configs: the grid's configs, by index (an item names its config by index).
        backends: a recipe per backend key; each is built here, once.
        concurrency: requests in flight per backend in this actor (the backend's own limit wins when lower).
        prices: the price table for the cost column.
        traces_dir: where traces go, on this actor's machine (a shared file system keeps them together).
    """

    def __init__(
        self,
        configs: list[ConfigSpec],
        backends: dict[str, BackendSpec],
        *,
        concurrency: int,
        prices: PriceTable,
        traces_dir: Path | None,
    ) -> None:
        self._backends = {key: spec.build() for key, spec in backends.items()}
        self._configs = [config.build(self._backends) for config in configs]
        self._engines: dict[str, Engine] = {}
        for key, backend in self._backends.items():
            limit = backend.capabilities.max_concurrency
            limit = concurrency if limit is None else min(limit, concurrency)
            self._engines[key] = Engine(backend, max_concurrency=limit)
        self._keys = [config.backend for config in configs]
        self._prices = prices
        self._traces_dir = traces_dir

    async def describe(self) -> list[tuple[str, str]]:
        """Each config's id and settings as built here: the driver checks they match its own before it sends
        any item, so records from an actor can never land under another config's id."""
        return [(config.id, config.settings) for config in self._configs]

    async def ping(self) -> int:
        """Answers once the actor is alive (after a restart, too): the driver asks after a failed call."""
        return os.getpid()

    async def run(self, index: int, problem: Problem) -> Record:
        """Run one item into its record (a model failure is a ``failed`` record, as in one process)."""
        config = self._configs[index]
        engine = self._engines[self._keys[index]]
        return await run_item(engine, config, problem, prices=self._prices, traces_dir=self._traces_dir)

    async def run_watched(self, index: int, problem: Problem) -> tuple[Record, dict[str, Any]]:
        """:meth:`run`, and what its calls met (answers, calls that found no server or no such model), so the
        driver keeps the single process's dead-server gate (:mod:`thinkloop.bench.health`)."""
        config = self._configs[index]
        engine = self._engines[self._keys[index]]
        calls = ProblemCalls()  # as in one process: what its calls met, from the result's typed failures
        record = await run_item(engine, config, problem, prices=self._prices, traces_dir=self._traces_dir, calls=calls)
        error = calls.last_error
        return record, {
            "answered": calls.answered,
            "unreachable": calls.unreachable,
            "error": None if error is None else (type(error).__name__, str(error)),
        }

    async def close(self) -> None:
        """Close the backends' connections (the driver asks before it ends the actor)."""
        for backend in self._backends.values():
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                await aclose()
            elif hasattr(backend, "close"):
                backend.close()
