"""One cgroup per sandbox, where the machine lets the caller make one: a single limit on all the memory the
sandbox holds, and a single count of its threads and processes.

``RLIMIT_AS`` bounds each process's address space, not what the sandbox holds in all: its tmpfs pages, kernel
memory for files, folders and pipes (a million empty folders in a 1 MiB tmpfs is a gigabyte of kernel memory),
and every process when processes are allowed. A memory cgroup counts all of it; a pids cgroup counts threads
and processes together whoever the caller is (``RLIMIT_NPROC`` does not count root's). cgroup v2 is used when
the caller's cgroup already delegates the ``memory`` and ``pids`` controllers to its children; cgroup v1 when
its ``memory`` and ``pids`` hierarchies are writable (root on most machines without v2). An ordinary user
usually has neither: then the sandbox runs without one (``docs/sandbox.md`` says what that leaves).

The sandbox's first process puts itself in the cgroup before it starts anything (:meth:`Cgroup.wrap`), so
nothing it starts is ever outside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import anyio

__all__ = ["JOIN_FAILED", "Cgroup", "cgroup_unavailable_reason", "create_cgroup", "disable_cgroups"]

JOIN_FAILED = 125
"""Exit status of the wrapper when it could not move itself into the cgroup (before anything started)."""
_WRAPPER = f'while [ "$1" != -- ]; do echo $$ > "$1" || exit {JOIN_FAILED}; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class _Layout:
    version: int
    memory: str  # the caller's folder in the memory hierarchy (v2: the one hierarchy)
    pids: str


@dataclass
class Cgroup:
    """The folders of one sandbox's cgroup (one for v2; one per hierarchy for v1)."""

    version: int
    folders: tuple[str, ...]

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` behind a shell that moves itself into the cgroup, then becomes ``argv`` (same process)."""
        procs = [os.path.join(folder, "cgroup.procs") for folder in self.folders]
        return ["/bin/sh", "-c", _WRAPPER, "sh", *procs, "--", *argv]

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the sandbox for passing the memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            with open(os.path.join(self.folders[0], name)) as events:
                for line in events:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        except (OSError, ValueError):
            pass
        return False

    async def remove(self) -> None:
        """Remove the folders (a dying process leaves its cgroup a moment after it is gone: retried for 2 s)."""
        for folder in self.folders:
            for _ in range(100):
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    await anyio.sleep(0.02)


_layout: list[_Layout | str] = []


def _find_layout() -> _Layout | str:
    try:
        with open("/proc/self/cgroup") as own, open("/proc/self/mountinfo") as info:
            return parse_layout(own.read(), info.read())
    except OSError as exc:
        return f"cannot read the caller's cgroups ({exc})"


def _delegated(folder: str) -> set[str]:
    try:
        with open(os.path.join(folder, "cgroup.subtree_control")) as control:
            return set(control.read().split())
    except OSError:
        return set()


def parse_layout(
    own: str,
    mountinfo: str,
    *,
    delegated: Callable[[str], set[str]] = _delegated,
    writable: Callable[[str], bool] = lambda folder: os.access(folder, os.W_OK),
) -> _Layout | str:
    """Where the caller's cgroups are and which version can be used, from ``/proc/self/cgroup`` and
    ``/proc/self/mountinfo`` (the checks of the folders are parameters, for tests)."""
    entries = [line.split(":", 2) for line in own.splitlines() if line.count(":") >= 2]
    mounts = [line.split() for line in mountinfo.splitlines() if " - " in line]
    paths = {controller: path for _, controllers, path in entries for controller in controllers.split(",")}
    v1: dict[str, str] = {}
    v2_mount: tuple[str, str] | None = None
    for fields in mounts:
        separator = fields.index("-")
        kind, root, point, options = fields[separator + 1], fields[3], fields[4], fields[separator + 3].split(",")
        if kind == "cgroup2" and v2_mount is None:
            v2_mount = (point, root)
        elif kind == "cgroup":
            for controller in ("memory", "pids"):
                if controller in options and controller in paths:
                    v1[controller] = _under(point, root, paths[controller])
    if v2_mount is not None and "" in paths:
        folder = _under(v2_mount[0], v2_mount[1], paths[""])
        if {"memory", "pids"} <= delegated(folder) and writable(folder):
            return _Layout(2, folder, folder)
    if len(v1) == 2 and all(writable(folder) for folder in v1.values()):
        return _Layout(1, v1["memory"], v1["pids"])
    return "no writable cgroup with the memory and pids controllers for the caller"


def _under(point: str, root: str, path: str) -> str:
    """Where a cgroup path (as /proc/self/cgroup gives it) is, in a hierarchy mounted at ``point``."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    inside = path.strip("/")
    return point.rstrip("/") + ("/" + inside if inside else "")


def _get_layout() -> _Layout | str:
    if not _layout:
        _layout.append(_find_layout())
    return _layout[0]


def cgroup_unavailable_reason() -> str | None:
    """Why sandboxes get no cgroup here, or ``None`` when they do (checked once per process)."""
    layout = _get_layout()
    return layout if isinstance(layout, str) else None


def disable_cgroups(reason: str) -> None:
    """Make no more cgroups in this process (one could be made but not joined: a delegation this module
    misread); runs go on without, as on a machine that has none."""
    _layout[:] = [reason]


def create_cgroup(*, memory_bytes: int, max_tasks: int) -> Cgroup | None:
    """A new cgroup with these limits, or ``None`` where none can be made (then never tried again)."""
    layout = _get_layout()
    if isinstance(layout, str):
        return None
    name = f"thinkloop-sandbox-{os.getpid()}-{secrets.token_hex(6)}"
    folders = tuple(dict.fromkeys(os.path.join(parent, name) for parent in (layout.memory, layout.pids)))
    made: list[str] = []
    try:
        for folder in folders:
            os.mkdir(folder, 0o700)
            made.append(folder)
        memory, pids = os.path.join(layout.memory, name), os.path.join(layout.pids, name)
        if layout.version == 2:
            _write(memory, "memory.max", memory_bytes)
            _write(memory, "memory.swap.max", 0, optional=True)
        else:
            _write(memory, "memory.limit_in_bytes", memory_bytes)
            _write(memory, "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
        _write(pids, "pids.max", max_tasks)
    except OSError as exc:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        _layout[:] = [f"cannot make a cgroup ({exc})"]
        return None
    return Cgroup(version=layout.version, folders=folders)


def _write(folder: str, name: str, value: int, *, optional: bool = False) -> None:
    try:
        with open(os.path.join(folder, name), "w") as control:
            control.write(str(value))
    except OSError:
        if not optional:
            raise
