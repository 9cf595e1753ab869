"""Run one child with its time and output bounded however it behaves, and leave nothing of it behind.

The child starts in a session of its own. It is killed (its own process, the processes directly below it, and
its process group) when the time is up or its output passes the cap. Under bubblewrap the process below it is
the PID namespace's init, whose death makes the kernel kill everything in the namespace. The pipes are then
read for at most half a second more: a grandchild that escaped the group (only possible without bubblewrap) and
still holds them does not hold the caller. Only processes that descend from the child are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

__all__ = ["Finished", "kill_tree", "run_bounded"]

_GRACE = 0.5
"""How long the pipes are read after the child ended or was killed: half of the second the caller may be held
past the time limit, the other half left for killing and cleaning up on a loaded machine."""


@dataclass(frozen=True)
class Finished:
    """How a bounded child ended."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_exceeded: bool
    seconds: float


async def run_bounded(
    command: Sequence[str],
    *,
    stdin: bytes,
    cwd: str,
    env: Mapping[str, str] | None,
    time_limit: float,
    max_output_bytes: int,
    pass_fds: Sequence[int] = (),
) -> Finished:
    """Run ``command`` feeding it ``stdin``; stop it after ``time_limit`` seconds or ``max_output_bytes`` of output
    (stdout and stderr together). Cancelling the caller kills the child too."""
    started = time.monotonic()
    out, err = bytearray(), bytearray()
    state = {"timed_out": False, "exceeded": False}
    process = await anyio.open_process(
        list(command), cwd=cwd, env=dict(env) if env is not None else None, start_new_session=True,
        pass_fds=pass_fds,
    )
    try:
        stdin_pipe, stdout_pipe, stderr_pipe = process.stdin, process.stdout, process.stderr
        if stdin_pipe is None or stdout_pipe is None or stderr_pipe is None:
            raise RuntimeError("the child process has no pipes")

        async def drain(stream: ByteReceiveStream, sink: bytearray, done: anyio.Event) -> None:
            try:
                async for chunk in stream:
                    room = max_output_bytes - len(out) - len(err)
                    sink.extend(chunk[: max(room, 0)])
                    if len(chunk) > room:
                        state["exceeded"] = True
                        kill_tree(process)
                        return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            finally:
                done.set()

        drained = (anyio.Event(), anyio.Event())
        async with anyio.create_task_group() as group:
            group.start_soon(drain, stdout_pipe, out, drained[0])
            group.start_soon(drain, stderr_pipe, err, drained[1])
            group.start_soon(_feed, stdin_pipe, stdin)
            with anyio.move_on_after(time_limit) as deadline:
                await process.wait()
            if deadline.cancelled_caught:
                state["timed_out"] = True
                kill_tree(process)
                await process.wait()
            with anyio.move_on_after(_GRACE):
                for event in drained:
                    await event.wait()
            if not all(event.is_set() for event in drained):
                kill_tree(process)  # the group is all that can be reached now; stop reading either way
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                kill_tree(process)
            await process.aclose()
    return Finished(
        returncode=process.returncode,
        stdout=bytes(out),
        stderr=bytes(err),
        timed_out=state["timed_out"],
        output_exceeded=state["exceeded"],
        seconds=time.monotonic() - started,
    )


async def _feed(pipe: ByteSendStream, data: bytes) -> None:
    try:
        await pipe.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the child died before reading its input: its exit status says why
    finally:
        with contextlib.suppress(OSError):
            await pipe.aclose()


def kill_tree(process: Process) -> None:
    """SIGKILL the child's own children (the PID namespace's init under bubblewrap), then its process group.

    The children are looked up only while the child is not yet reaped (its pid is still ours); a pidfd pins each
    one and its parent is checked again after, so a recycled pid is never signalled.
    """
    pid = process.pid
    for child in _children(pid) if process.returncode is None else ():
        try:
            pidfd = os.pidfd_open(child)
        except OSError:
            continue
        try:
            if _parent_of(child) == pid:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)
    # Once the child is reaped its group id stays reserved while any member lives, so this still reaches the
    # members it left behind (without bubblewrap) and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as listing:
                found += [int(p) for p in listing.read().split()]
    return found


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
