"""Run model-written Python in a kernel sandbox and judge the candidate by how it ends.

Model output is untrusted code. It runs under bubblewrap (see :mod:`thinkloop.verifiers.sandbox` and
``docs/sandbox.md``): its own user, PID, mount, IPC, network and UTS namespaces, no capabilities, a read-only
view of only what Python needs, ``/tmp`` and ``/scratch`` (tmpfs of its own, nothing on the host's disk) as
the only writable places, an empty environment, a seccomp filter that refuses to start processes, a cgroup
bounding its memory and threads where the machine allows one, and every process killed when the program ends
or its time is up. Resource limits and a Python audit hook run inside as well, but only to turn common
mistakes into a clear reason; the kernel is the guard.

Where bubblewrap cannot make a sandbox (not installed, user namespaces disabled) the verifier raises
:class:`SandboxUnavailable`, unless built with ``allow_unguarded=True``: then the program runs as a plain child
process with only the limits and the audit hook (which a determined program gets round), and every verdict
says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from thinkloop.exceptions import ConfigurationError, SandboxUnavailable
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.checks import candidate_answer
from thinkloop.verifiers.extract import answers_equivalent, extract_answer
from thinkloop.verifiers.sandbox import (
    JOIN_FAILED,
    SCRATCH,
    bootstrap_source,
    bubblewrap_command,
    create_cgroup,
    disable_cgroups,
    probe,
    process_filter,
    python_roots,
    remove_tree,
    run_bounded,
)

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

__all__ = ["ProgramRun", "ProgramVerifier", "extract_program", "sandbox_unavailable_reason"]

DENIED_EXIT = 97
"""Exit status of a program stopped by the audit hook (an escape attempt)."""
MEMORY_EXIT = 98
"""Exit status of a program that ran out of memory (``MemoryError`` under ``RLIMIT_AS``)."""
CPU_EXIT = 96
"""Exit status of a program that reached its CPU time limit (``SIGXCPU``; the program is its namespace's init,
which the kernel spares signals without a handler)."""
_MARKER = "[thinkloop-sandbox]"
_STARTED = f"{_MARKER} started\n".encode()
_MIB = 1024 * 1024

_CODE_BLOCK = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})


def extract_program(text: str) -> str:
    """The Python program in a reply: its ```` ```python ```` blocks joined in order; else its untagged
    blocks; else the whole text."""
    blocks = _CODE_BLOCK.findall(text)
    python = [code for tag, code in blocks if tag.lower() in _PYTHON_TAGS]
    if python:
        return "\n".join(python)
    untagged = [code for tag, code in blocks if not tag]
    if untagged:
        return "\n".join(untagged)
    return text


async def sandbox_unavailable_reason(bwrap: str = "bwrap") -> str | None:
    """Why programs cannot be sandboxed on this machine, or ``None`` when they can (probed once)."""
    return await probe(bwrap)


@dataclass(frozen=True)
class ProgramRun:
    """How one run ended."""

    returncode: int | None
    """The exit status; ``-N`` when killed by signal ``N``."""
    stdout: str
    stderr: str
    timed_out: bool = False
    guarded: bool = True
    """Whether it ran in the kernel sandbox (``False``: ``allow_unguarded`` and no bubblewrap)."""
    output_exceeded: bool = False
    """Whether it was stopped for printing more than ``max_output_bytes``."""
    memory_exceeded: bool = False
    """Whether the kernel killed it for passing the sandbox's total memory limit (its cgroup's)."""

    @property
    def denied(self) -> str | None:
        """What the audit hook stopped, when it stopped the program."""
        if self.returncode != DENIED_EXIT:
            return None
        for line in reversed(self.stderr.splitlines()):
            if line.startswith(f"{_MARKER} denied "):
                return line.removeprefix(f"{_MARKER} denied ")
        return None

    @property
    def out_of_memory(self) -> bool:
        return (
            self.memory_exceeded
            or self.returncode == MEMORY_EXIT
            or (self.returncode not in (0, None) and "MemoryError" in self.stderr[-2000:])
        )

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_exceeded

    def failure(self, *, timeout: float, max_output_bytes: int | None = None) -> str | None:
        """Why the run counts as a failure, in words; ``None`` when it exited 0."""
        if self.timed_out:
            return f"timed out after {timeout:g}s and was killed"
        if self.output_exceeded:
            limit = f" ({max_output_bytes} bytes)" if max_output_bytes else ""
            return f"printed more than its output limit{limit} and was killed"
        if self.denied is not None:
            return f"attempted a forbidden operation and was stopped ({self.denied})"
        if self.memory_exceeded:
            return "ran out of memory (the sandbox's total memory limit, files in /tmp and /scratch included)"
        if self.out_of_memory:
            return "ran out of memory (memory limit exceeded)"
        code = self.returncode
        if code == CPU_EXIT:
            return "exceeded its CPU time limit (SIGXCPU)"
        if code is not None and code < 0:
            if -code == signal.SIGXCPU:
                return "exceeded its CPU time limit (killed by SIGXCPU)"
            return f"was killed by {_signal_name(-code)}"
        if code != 0:
            return f"crashed (exit status {code})"
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ProgramVerifier:
    """Accepts a candidate whose program runs to completion (exit status 0) in the sandbox.

    Guaranteed under bubblewrap (the kernel enforces it, whatever the program does, ``ctypes`` included): the
    program sees only ``/usr``, the interpreter's folders and ``read_only_paths``, read-only; it can write only
    to ``/scratch`` (``scratch_mb``) and ``/tmp`` (``tmp_mb``), tmpfs of its own (nothing lands on the host); it
    has no network (a loopback of its own), no view of other processes, no capabilities, an empty environment,
    cannot start processes (unless ``allow_processes``) nor more than ``max_processes`` threads and processes;
    it is killed with everything it started after ``timeout`` seconds or ``max_output_bytes`` of output. Where
    the caller may make a cgroup, all the memory the sandbox holds is bounded in total and its threads and
    processes are counted together, for root too. Not guaranteed: without a cgroup, memory is bounded per
    process (``memory_mb``) and per filesystem, and the kernel's memory for the program's files is not counted;
    CPU time is shared; kernel bugs are out of scope. Exit status 0 is all this verifier checks unless given
    ``expected`` or ``match_answer``. See ``docs/sandbox.md``.

    Args:
        timeout: wall-clock seconds before the sandbox is killed.
        memory_mb: address-space limit per process (``RLIMIT_AS``) in MiB.
        cpu_seconds: CPU-time limit (``RLIMIT_CPU``).
        file_size_mb: largest file the program may write (``RLIMIT_FSIZE``), in MiB.
        expected: also require the program's printed answer (the answer extracted from its stdout) to equal
            this.
        match_answer: also require the program's printed answer to equal the candidate's answer.
        program: builds the program from ``(question, candidate)``; by default the candidate's ```` ```python ````
            blocks (see :func:`extract_program`).
        allow_unguarded: where no sandbox can be had, run as a plain child process (and say so in the verdict)
            instead of raising :class:`SandboxUnavailable`.
        python: the interpreter to run (default: this one).
        bwrap: the bubblewrap executable.
        max_output_bytes: stdout and stderr together; a program that prints more is killed and rejected.
        scratch_root: where to create the scratch folders of runs without the sandbox (default: the system's
            temporary folder). Sandboxed runs write to a tmpfs of their own, never to the host.
        tmp_mb: the size of the program's private ``/tmp``.
        scratch_mb: the size of the program's ``/scratch`` (its working folder), a tmpfs like ``/tmp``.
        max_processes: ``RLIMIT_NPROC`` inside the sandbox (threads count; not enforced for root's programs).
        allow_processes: let the program start processes (inside the sandbox; they die with it).
        read_only_paths: more host folders the program may read (e.g. a package outside the interpreter).

    Raises:
        SandboxUnavailable: from ``verify`` and ``run`` when no sandbox can be had and ``allow_unguarded`` is
            false, or when the sandbox fails to start the program (an infrastructure error, never a verdict).
        ConfigurationError: from ``verify`` and ``run`` when ``python`` cannot be run.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        memory_mb: int = 1024,
        cpu_seconds: int = 10,
        file_size_mb: int = 16,
        expected: str | None = None,
        match_answer: bool = False,
        program: Callable[[str, Candidate], str] | None = None,
        allow_unguarded: bool = False,
        python: str | None = None,
        bwrap: str = "bwrap",
        max_output_bytes: int = _MIB,
        scratch_root: str | os.PathLike[str] | None = None,
        tmp_mb: int = 64,
        scratch_mb: int = 64,
        max_processes: int = 64,
        allow_processes: bool = False,
        read_only_paths: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        for name, value in (
            ("timeout", timeout),
            ("memory_mb", memory_mb),
            ("cpu_seconds", cpu_seconds),
            ("file_size_mb", file_size_mb),
            ("max_output_bytes", max_output_bytes),
            ("tmp_mb", tmp_mb),
            ("scratch_mb", scratch_mb),
            ("max_processes", max_processes),
        ):
            if value <= 0:
                raise ConfigurationError(f"ProgramVerifier {name} must be positive (got {value})")
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.cpu_seconds = int(cpu_seconds)
        self.file_size_mb = int(file_size_mb)
        self.expected = expected
        self.match_answer = match_answer
        self.program = program
        self.allow_unguarded = allow_unguarded
        self.python = python or sys.executable
        self.bwrap = bwrap
        self.max_output_bytes = int(max_output_bytes)
        self.scratch_root = None if scratch_root is None else os.fspath(scratch_root)
        self.tmp_mb = int(tmp_mb)
        self.scratch_mb = int(scratch_mb)
        self.max_processes = int(max_processes)
        self.allow_processes = allow_processes
        self.read_only_paths = tuple(os.path.abspath(os.fspath(p)) for p in read_only_paths)

    def __repr__(self) -> str:
        return (
            f"ProgramVerifier(timeout={self.timeout:g}, memory_mb={self.memory_mb}, "
            f"cpu_seconds={self.cpu_seconds}, allow_unguarded={self.allow_unguarded})"
        )

    # --- running ------------------------------------------------------------------------------------------
    async def run(self, source: str) -> ProgramRun:
        """Run ``source`` in the sandbox and report how it ended.

        Raises:
            SandboxUnavailable: no sandbox here and ``allow_unguarded`` is false.
        """
        reason = await probe(self.bwrap)
        if reason is not None and not self.allow_unguarded:
            raise SandboxUnavailable(
                f"ProgramVerifier cannot sandbox model-written code here: {reason}. "
                "Pass allow_unguarded=True to run it without the sandbox (only an audit hook and resource limits)."
            )
        if reason is None:
            return await self._run_in("/", source, guarded=True)
        # Without the sandbox the program writes to a host folder: a private (0700) one, removed afterwards in a
        # worker thread, without following links (see sandbox/cleanup.py).
        parent = tempfile.mkdtemp(prefix="thinkloop-sandbox-", dir=self.scratch_root)
        try:
            return await self._run_in(_scratch_in(parent), source, guarded=False)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(remove_tree, parent)

    def _config(self, *, writable: list[str], guarded: bool) -> str:
        limits = {
            "RLIMIT_AS": self.memory_mb * _MIB,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_FSIZE": self.file_size_mb * _MIB,
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CORE": 0,
        }
        if guarded:  # counted per user namespace there; outside one it would count all of the user's processes
            limits["RLIMIT_NPROC"] = self.max_processes
        return json.dumps(
            {
                "writable": writable,
                "denied_exit": DENIED_EXIT,
                "memory_exit": MEMORY_EXIT,
                "cpu_exit": CPU_EXIT,
                "marker": _MARKER,
                "allow_processes": self.allow_processes,
                "limits": limits,
            }
        )

    async def _run_in(self, scratch: str, source: str, *, guarded: bool) -> ProgramRun:
        inner = [self.python, "-I", "-B", "-c", bootstrap_source()]
        seccomp_fd = None
        # Threads and processes of the program (as RLIMIT_NPROC counts them), plus bubblewrap itself (the shell
        # that joins the cgroup becomes bubblewrap); all the memory the sandbox can hold.
        cgroup = (
            create_cgroup(
                memory_bytes=(self.memory_mb + self.tmp_mb + self.scratch_mb) * _MIB,
                max_tasks=self.max_processes + 1,
            )
            if guarded
            else None
        )
        try:
            if guarded:
                inner.append(self._config(writable=[SCRATCH, "/tmp"], guarded=True))
                rules = process_filter(allow_processes=self.allow_processes)
                if rules is not None:
                    seccomp_fd = os.memfd_create("thinkloop-seccomp", os.MFD_CLOEXEC)
                    os.write(seccomp_fd, rules)
                    os.lseek(seccomp_fd, 0, os.SEEK_SET)
                command = bubblewrap_command(
                    shutil.which(self.bwrap) or self.bwrap,
                    inner,
                    scratch_bytes=self.scratch_mb * _MIB,
                    read_only=[*await python_roots(self.python), *self.read_only_paths],
                    tmp_bytes=self.tmp_mb * _MIB,
                    seccomp_fd=seccomp_fd,
                )
                # bubblewrap's own environment too: its init, visible as /proc/1, keeps it (the caller's keys)
                argv, env, fds = command.argv, {"PATH": "/usr/bin:/bin"}, command.pass_fds
                if cgroup is not None:
                    argv = cgroup.wrap(argv)
            else:
                inner.append(self._config(writable=[scratch], guarded=False))
                env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8"}
                argv, fds = inner, ()
            finished = await run_bounded(
                argv,
                stdin=source.encode("utf-8", "replace"),
                cwd=scratch,
                env=env,
                time_limit=self.timeout,
                max_output_bytes=self.max_output_bytes,
                pass_fds=fds,
            )
            memory_exceeded = cgroup is not None and cgroup.out_of_memory()
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            if cgroup is not None:
                with anyio.CancelScope(shield=True):
                    await cgroup.remove()
        code, stderr = finished.returncode, finished.stderr
        if stderr.startswith(_STARTED):
            stderr = stderr.removeprefix(_STARTED)
        elif not finished.timed_out:
            # An infrastructure failure (bubblewrap could not set up, the interpreter could not start), never a
            # verdict on the program: nothing of it has run.
            said = stderr.decode("utf-8", "replace").strip()[-1000:] or "no message"
            if cgroup is not None and code == JOIN_FAILED:  # the machine let us make a cgroup, not join it
                disable_cgroups(f"cannot join a new cgroup ({said})")
                return await self._run_in(scratch, source, guarded=guarded)
            raise SandboxUnavailable(
                f"ProgramVerifier could not start the program (exit status {code}{', sandboxed' if guarded else ''}): "
                f"{said}"
            )
        if guarded and code is not None and code > 128:
            code = 128 - code  # bubblewrap reports a program killed by signal N as 128 + N
        return ProgramRun(
            returncode=code,
            stdout=finished.stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            timed_out=finished.timed_out,
            guarded=guarded,
            output_exceeded=finished.output_exceeded,
            memory_exceeded=memory_exceeded,
        )

    # --- verifying ---------------------------------------------------------------------------------------
    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        source = self.program(question, candidate) if self.program is not None else extract_program(candidate.text)
        if not source.strip():
            return Verdict.reject("There is no program to run. Write the program in a ```python block.")
        run = await self.run(source)
        notes = (
            [] if run.guarded else ["(ran WITHOUT the sandbox: bubblewrap is not usable here; allow_unguarded=True)"]
        )
        failure = run.failure(timeout=self.timeout, max_output_bytes=self.max_output_bytes)
        if failure is not None:
            detail = _tail(run.stderr) if run.denied is None and not run.output_exceeded else ""
            message = f"The program {failure}." + (f"\n{detail}" if detail else "")
            return Verdict.reject("\n".join([message, *notes]))
        printed = extract_answer(run.stdout)
        wanted: list[tuple[str | None, str]] = []
        if self.expected is not None:
            wanted.append((self.expected, "the expected answer"))
        if self.match_answer:
            wanted.append((candidate_answer(candidate), "the stated answer"))
        for answer, label in wanted:
            if not answers_equivalent(printed, answer):
                shown = "nothing" if printed is None else repr(printed)
                return Verdict.reject("\n".join([f"The program printed {shown}, not {label}.", *notes]))
        output = _tail(run.stdout, 500)
        message = "The program ran successfully." + (f" Output:\n{output}" if output else "")
        return Verdict.accept("\n".join([message, *notes]))


def _scratch_in(parent: str) -> str:
    scratch = os.path.join(os.path.realpath(parent), "scratch")
    os.mkdir(scratch, 0o700)
    return scratch


def _tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]
