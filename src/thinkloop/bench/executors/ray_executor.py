"""Run a benchmark grid's items on a pool of Ray actors; this process stays the store's only writer.

How it works: every pending (config, problem) item goes into one shared queue. Each actor gets
``concurrency`` slots in the driver; a slot takes an item, calls the actor, waits for the record without
blocking the event loop, and hands the record to the runner, which appends it to the store. So at most
``concurrency`` items are in flight per actor (backpressure), and resume, settings fingerprints,
``--retry-failed`` and ``bench report`` work exactly as in one process.

Faults: when an actor dies (killed, out of memory, its node gone), the calls it held fail; their items go
back into the queue and another slot (of a live actor, or of this one once Ray has restarted it) sends them
again. An item is written only when its record arrives, so none is lost and none is written twice; the cost
of a death is re-running what that actor held. An item whose actor died ``max_attempts`` times is recorded as
failed (an infrastructure failure), so a poison item cannot loop forever. If every actor is gone for good,
the run stops with :class:`~thinkloop.exceptions.ExecutorError`; what was written stays, and re-running the
same command resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from thinkloop import exceptions
from thinkloop.bench.datasets import Problem
from thinkloop.bench.executors.specs import BackendSpec, ship
from thinkloop.bench.health import ProblemCalls, ServerWatch
from thinkloop.bench.runner import Config, failed_record
from thinkloop.bench.store import Record
from thinkloop.exceptions import ConfigurationError, ExecutorError

if TYPE_CHECKING:
    from thinkloop.bench.runner import Runner

log = logging.getLogger("thinkloop.bench")

INSTALL_HINT = "Ray is not installed: pip install 'thinkloop[ray]'"
POLL_S = 0.005
"""How often a slot polls Ray for its result when the event loop is not asyncio (trio)."""
RESTART_POLL_S = 0.2
"""How often a slot asks a restarting actor whether it is back."""


def import_ray() -> Any:
    """``ray``, or a :class:`ConfigurationError` that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigurationError(INSTALL_HINT) from exc
    return ray


def start_local_ray(num_cpus: int | None = None) -> Any:
    """Start a private Ray on this machine that listens on 127.0.0.1 only, with no dashboard.

    ``_node_ip_address="127.0.0.1"`` alone is not enough: Ray swaps a loopback node address for the machine's
    own address, and its gRPC servers then listen on every interface. Marking clusters off
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what Ray does on macOS and Windows) keeps the node address, so
    every Ray server binds 127.0.0.1 (``ss -ltnp`` in docs/scale.md). Returns the ``ray`` module.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read by Ray's processes, started below
    ray = import_ray()
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # this process may have imported Ray already
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    return ray


@dataclass
class _Item:
    index: int
    config: Config
    problem: Problem
    attempts: int = 0


async def _resolve(ray: Any, ref: Any) -> Any:
    """The value of an object ref, without blocking the event loop: awaited on asyncio (Ray completes the
    future from its own thread), polled with ``ray.wait(timeout=0)`` elsewhere (trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        while True:
            ready, _ = ray.wait([ref], timeout=0)
            if ready:
                return ray.get(ready[0])
            await anyio.sleep(POLL_S)
    return await ref


def _calls(met: dict[str, Any]) -> ProblemCalls:
    """What an actor's item met, rebuilt here (the error as its own class, so the gate's line names it)."""
    error = None
    if met.get("error"):
        name, message = met["error"]
        kind = getattr(exceptions, name, exceptions.BackendError)
        error = (
            kind(message)
            if isinstance(kind, type) and issubclass(kind, exceptions.BackendError)
            else exceptions.BackendError(message)
        )
    return ProblemCalls(
        answered=int(met.get("answered", 0)), unreachable=int(met.get("unreachable", 0)), last_error=error
    )


class RayExecutor:
    """Spread a grid's items over Ray actors (``Runner(executor=...)``, ``run_benchmark(executor=...)``).

    Args:
        address: ``"local"`` (or ``None``) starts a private Ray on this machine, loopback only and without a
            dashboard, and stops it at the end; an address (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``)
            joins that cluster. If this process already called ``ray.init``, that Ray is used and left running.
        actors: how many actors (default: one per CPU the cluster offers, divided by ``cpus_per_actor``).
        cpus_per_actor: Ray CPUs each actor reserves.
        num_cpus: CPUs of a ``"local"`` Ray (default: this machine's).
        max_restarts: how often Ray restarts a crashed actor (its node lost, the OOM killer).
        max_attempts: how often one item is sent before it is recorded as failed (its actor died each time).
        restart_timeout: seconds to wait for a restarting actor before its items go to the others for good.
        backend_specs: a :class:`BackendSpec` by backend label (``model`` or ``model@server``) for backends
            that cannot be derived or pickled (e.g. an embedded model each actor loads itself).
        runtime_env: Ray's runtime environment for the actors (``pip``, ``env_vars``, ``working_dir``).

    The runner's ``concurrency`` is per actor: at most that many items in flight on each.
    After a run, ``actors_lost`` and ``resent`` say how many actors died and how many items went out again,
    and ``startup_s`` how long the pool took to start.
    """

    def __init__(
        self,
        address: str | None = "local",
        *,
        actors: int | None = None,
        cpus_per_actor: float = 1.0,
        num_cpus: int | None = None,
        max_restarts: int = 3,
        max_attempts: int = 3,
        restart_timeout: float = 120.0,
        backend_specs: Mapping[str, BackendSpec] | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if actors is not None and actors < 1:
            raise ConfigurationError(f"actors must be at least 1, got {actors}")
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts}")
        self.address = address
        self.actors = actors
        self.cpus_per_actor = cpus_per_actor
        self.num_cpus = num_cpus
        self.max_restarts = max_restarts
        self.max_attempts = max_attempts
        self.restart_timeout = restart_timeout
        self.backend_specs = dict(backend_specs or {})
        self.runtime_env = runtime_env
        self.handles: list[Any] = []
        """The live pool while a run is going (tests kill one of these)."""
        self.actors_lost = 0
        self.resent = 0
        self.startup_s = 0.0
        """Seconds from the start of the last run until every actor was up (Ray, if started here, included)."""

    def _connect(self) -> tuple[Any, bool]:
        """``(ray, owned)``: ``owned`` when this executor started the Ray it must stop."""
        ray = import_ray()
        if ray.is_initialized():
            return ray, False
        if self.address in (None, "local"):
            return start_local_ray(self.num_cpus), True
        ray.init(address=self.address, logging_level=logging.WARNING)
        return ray, False

    def _pool_size(self, ray: Any) -> int:
        if self.actors is not None:
            return self.actors
        cpus = ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // self.cpus_per_actor))

    async def run(
        self, runner: Runner, todo: Sequence[tuple[Config, Problem]], write: Callable[[Record], None]
    ) -> None:
        """Run ``todo`` on the pool, handing each record to ``write`` (the runner's one writer) as it comes."""
        if not todo:
            return
        configs: list[Config] = []
        index_of: dict[int, int] = {}
        for config, _ in todo:
            if id(config) not in index_of:
                index_of[id(config)] = len(configs)
                configs.append(config)
        import_ray()
        shipped, backends = ship(configs, self.backend_specs)  # fails early for a backend that cannot travel
        started = time.perf_counter()
        ray, owned = self._connect()
        try:
            from thinkloop.bench.executors.ray_worker import BenchWorker

            concurrency = max(1, runner.concurrency)
            actor_class = ray.remote(BenchWorker).options(
                num_cpus=self.cpus_per_actor,
                max_restarts=self.max_restarts,
                max_task_retries=0,
                max_concurrency=concurrency + 4,
                runtime_env=self.runtime_env,
            )
            self.handles = [
                actor_class.remote(
                    shipped, backends, concurrency=concurrency, prices=runner.prices, traces_dir=runner.traces_dir
                )
                for _ in range(self._pool_size(ray))
            ]
            await self._check_pool(ray, configs)
            self.startup_s = time.perf_counter() - started
            items = [_Item(index_of[id(config)], config, problem) for config, problem in todo]
            limit = runner.stop_after_unreachable
            watches = {id(c.backend): ServerWatch(c.backend, limit=limit) for c in configs}
            await self._run_items(ray, items, concurrency, write, watches)
        finally:
            await self._stop_pool(ray)
            if owned:
                ray.shutdown()

    async def _check_pool(self, ray: Any, configs: list[Config]) -> None:
        """Wait for every actor to start, and check it builds the same config ids and settings as here."""
        expected = [(config.id, config.settings) for config in configs]
        for handle in self.handles:
            try:
                described = await _resolve(ray, handle.describe.remote())
            except ray.exceptions.RayError as exc:
                raise ConfigurationError(f"a Ray actor could not start: {exc}") from exc
            for (want_id, want), (got_id, got) in zip(expected, described, strict=True):
                if (want_id, want) != (got_id, got):
                    raise ConfigurationError(
                        f"a Ray actor built config {got_id!r} (settings {got}) for {want_id!r} (settings {want}):"
                        " its backend spec does not reproduce the backend; pass backend_specs for it"
                    )

    async def _run_items(
        self,
        ray: Any,
        items: list[_Item],
        concurrency: int,
        write: Callable[[Record], None],
        watches: dict[int, ServerWatch] | None = None,
    ) -> None:
        send, receive = anyio.create_memory_object_stream[_Item](math.inf)
        for item in items:
            send.send_nowait(item)
        remaining = len(items)
        watches = watches or {}
        stopped: list[ServerWatch] = []

        def settle() -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                send.close()  # every slot's loop ends

        def done(record: Record, item: _Item | None = None, met: dict[str, Any] | None = None) -> None:
            """Write a record, unless the dead-server gate holds it back (as in one process: problems whose
            every call found no server, or no such model, are held; ``limit`` in a row stop the run)."""
            watch = watches.get(id(item.config.backend)) if item is not None else None
            if watch is None or met is None:
                write(record)
                settle()
                return
            action = watch.observe(_calls(met), record)
            if action == "stop":
                stopped.append(watch)
                group.cancel_scope.cancel()  # items in flight are not written: they run again next time
                return
            if action == "write":
                if watch.streak == 0:
                    for held in watch.release():
                        write(held)
                write(record)
            settle()

        dead: set[int] = set()
        with send, receive:
            async with anyio.create_task_group() as group:
                for number, handle in enumerate(self.handles):
                    for _ in range(concurrency):
                        group.start_soon(self._slot, ray, number, handle, receive, send, done, dead)
        if stopped:
            stopped[0].release()  # never written: the same command runs these problems again
            raise stopped[0].error()
        for watch in watches.values():
            for held in watch.release():  # the run ended before the gate closed: they were real failures
                write(held)
        if remaining:
            raise ExecutorError(
                f"all {len(self.handles)} Ray actors died with {remaining} items not run; the results so far "
                "are saved, and re-running the same command resumes"
            )

    async def _slot(
        self,
        ray: Any,
        number: int,
        handle: Any,
        receive: MemoryObjectReceiveStream[_Item],
        send: MemoryObjectSendStream[_Item],
        done: Callable[..., None],
        dead: set[int],
    ) -> None:
        """One in-flight place on one actor: take an item, run it there, write its record; on the actor's death,
        put the item back and carry on once the actor is back (or stop if it is gone for good)."""
        async for item in receive:
            if number in dead:
                send.send_nowait(item)  # this actor is gone; a live slot takes it
                return
            started = time.perf_counter()
            ref = handle.run_watched.remote(item.index, item.problem)
            met: dict[str, Any] | None = None
            try:
                record, met = await _resolve(ray, ref)
            except anyio.get_cancelled_exc_class():
                ray.cancel(ref)
                raise
            except ray.exceptions.RayTaskError as exc:  # the actor's code raised: a failure, never a wrong answer
                record = failed_record(item.config, item.problem, exc, time.perf_counter() - started, None)
            except ray.exceptions.RayError as exc:  # the actor died or its result was lost
                item.attempts += 1
                if item.attempts >= self.max_attempts:
                    error = ExecutorError(f"its Ray actor died {item.attempts} times while running it: {exc}")
                    done(failed_record(item.config, item.problem, error, time.perf_counter() - started, None))
                else:
                    self.resent += 1
                    send.send_nowait(item)
                if not await self._alive(ray, number, handle, dead):
                    return
                continue
            done(record, item, met)

    async def _alive(self, ray: Any, number: int, handle: Any, dead: set[int]) -> bool:
        """Whether the actor answers: a restarting one is waited for (up to ``restart_timeout`` seconds); one
        that is gone for good is counted once and its slots stop."""
        deadline = anyio.current_time() + self.restart_timeout
        while number not in dead:
            try:
                await _resolve(ray, handle.ping.remote())
                return True
            except ray.exceptions.ActorUnavailableError as exc:  # restarting, or unreachable for a moment
                if anyio.current_time() < deadline:
                    await anyio.sleep(RESTART_POLL_S)
                    continue
                reason: Exception = exc
            except ray.exceptions.RayError as exc:
                reason = exc
            if number not in dead:
                dead.add(number)
                self.actors_lost += 1
                log.warning("Ray actor %d is gone (%s); its items go to the other actors", number, reason)
        return False

    async def _stop_pool(self, ray: Any) -> None:
        """Close each live actor's connections, then end it (so no actor outlives the run)."""
        handles, self.handles = self.handles, []
        with anyio.move_on_after(10, shield=True):  # runs after a cancellation too
            for handle in handles:
                with contextlib.suppress(ray.exceptions.RayError):  # already dead
                    await _resolve(ray, handle.close.remote())
        for handle in handles:
            ray.kill(handle)
