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
import select
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

__all__ = ["Finished", "ProcessTree", "run_bounded"]

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
    # Shielded: a cancellation that lands while the child is being started would lose the handle to kill it.
    with anyio.CancelScope(shield=True):
        process = await anyio.open_process(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    tree = ProcessTree(process)
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
                        tree.kill()
                        return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            finally:
                done.set()

        drained = (anyio.Event(), anyio.Event())
        async with anyio.create_task_group() as group:
            group.start_soon(tree.watch)
            group.start_soon(drain, stdout_pipe, out, drained[0])
            group.start_soon(drain, stderr_pipe, err, drained[1])
            group.start_soon(_feed, stdin_pipe, stdin)
            with anyio.move_on_after(time_limit) as deadline:
                await process.wait()
            if deadline.cancelled_caught:
                state["timed_out"] = True
                tree.kill()
                await process.wait()
            with anyio.move_on_after(_GRACE):
                for event in drained:
                    await event.wait()
            if not all(event.is_set() for event in drained):
                tree.kill()  # the group is all that can be reached now; stop reading either way
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            tree.kill()  # whatever still runs below it (the namespace's init may outlive bubblewrap by a moment)
            await tree.wait_gone()
            await process.aclose()
            tree.release()
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


class ProcessTree:
    """The child and the processes directly below it, each pinned by a pidfd as soon as it is seen.

    Under bubblewrap the one process below the child is the PID namespace's init (the program, ``--as-pid-1``).
    The child reports the program's exit as soon as it has it, while the init may still be killing the
    rest of the namespace; its pidfd reads ready only once every process of the namespace has exited, so
    waiting on it means nothing is left. Pinning by pidfd (and checking the parent after) means a recycled pid
    is never signalled.
    """

    def __init__(self, process: Process) -> None:
        self.process = process
        self.pinned: dict[int, int] = {}  # pid -> pidfd

    def pin(self) -> None:
        """Pin the child's children; only while the child is not yet reaped (its pid is still ours)."""
        pid = self.process.pid
        if self.process.returncode is not None:
            return
        for child in _children(pid):
            if child in self.pinned:
                continue
            try:
                pidfd = os.pidfd_open(child)
            except OSError:
                continue
            if _parent_of(child) == pid:
                self.pinned[child] = pidfd
            else:
                os.close(pidfd)

    async def watch(self) -> None:
        """Pin the first child as soon as it appears (bubblewrap starts the namespace's init within milliseconds)."""
        pause = 0.002
        while self.process.returncode is None and not self.pinned:
            self.pin()
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.05)  # a child that starts none (no bubblewrap) is not polled hard

    def kill(self) -> None:
        """SIGKILL the pinned children, then the child's process group. The child is stopped first, so it
        cannot start another child while they are looked up."""
        pid = self.process.pid
        if self.process.returncode is None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
            self.pin()
        for pidfd in self.pinned.values():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        # Once the child is reaped its group id stays reserved while any member lives, so this still reaches
        # the members it left behind (without bubblewrap) and nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    async def wait_gone(self) -> None:
        """Wait (at most ``_GRACE``) until the pinned processes have exited, then let go of them."""
        try:
            with anyio.move_on_after(_GRACE):
                for pidfd in self.pinned.values():
                    # A pidfd reads ready once its process is gone. anyio.wait_readable would need anyio 4.7;
                    # we support 4.4, and this loop lasts a few milliseconds.
                    while not select.select([pidfd], [], [], 0)[0]:  # noqa: ASYNC110
                        await anyio.sleep(0.002)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Collect the pinned processes that have become the caller's own children, and let go of them all.
        Called once the child itself has been waited for, so that any orphan has been handed over by then."""
        for pidfd in self.pinned.values():
            _reap_if_ours(pidfd)
            os.close(pidfd)
        self.pinned.clear()


def _reap_if_ours(pidfd: int) -> None:
    """Collect a pinned process that has become the caller's own child.

    The namespace's init is the child's child; when the child is killed first, the kernel hands the init to the
    nearest subreaper, which is the caller when it is a container's PID 1 (or a ``PR_SET_CHILD_SUBREAPER``
    process). Nobody else would wait for it: without this, each run would leave a zombie behind. Only this
    very process is waited for (through its pidfd), never "any child", so the caller's other children are
    untouched."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)


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
