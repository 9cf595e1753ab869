"""Run model-written Python in a guarded child process and judge the candidate by how it ends.

The program runs in a separate process (``anyio.open_process``; no threads) under these guards:

* **no network**: a fresh network namespace (``unshare -n``, or ``unshare -rn`` without root) with no
  interface up. Where no namespace can be had the verifier raises :class:`SandboxUnavailable`, unless built with
  ``allow_unguarded=True``, in which case it runs and every verdict says it ran unguarded;
* **time**: a wall-clock timeout that kills the whole process group, and ``RLIMIT_CPU``;
* **memory and files**: ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, no core dumps;
* **a scratch directory** (a fresh temporary directory: the working directory, ``HOME`` and ``TMPDIR``),
  removed afterwards;
* **audit hooks** (``sys.addaudithook``, installed by a small bootstrap before the program runs) that end the
  program at once when it writes, creates, renames or deletes anything outside the scratch directory, opens
  a directory outside it, opens a socket, starts a process, sends a signal or resolves native symbols with
  ``ctypes``. Such an escape attempt is a rejection.

Audit hooks are a tripwire, not a security boundary: Python code determined to get round them can. The
namespace and the resource limits are enforced by the kernel. Reading files is not restricted (the program
must be able to import the standard library and installed packages).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteReceiveStream

from thinkloop.exceptions import ConfigurationError, SandboxUnavailable
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.checks import candidate_answer
from thinkloop.verifiers.extract import answers_equivalent, extract_answer

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

__all__ = ["ProgramRun", "ProgramVerifier", "extract_program", "network_namespace"]

DENIED_EXIT = 97
"""Exit status of a program stopped by the audit hooks (an escape attempt)."""
MEMORY_EXIT = 98
"""Exit status of a program that ran out of memory (``MemoryError`` under ``RLIMIT_AS``)."""
_MARKER = "[thinkloop-sandbox]"

DEFAULT_NAMESPACE_COMMANDS: tuple[tuple[str, ...], ...] = (("unshare", "-n"), ("unshare", "-rn"))
"""Ways to enter a fresh network namespace, tried in order: as root, then in a user namespace."""

# The bootstrap runs in the child (``python -I -B -c``): it sets the resource limits, reads the program from
# stdin, installs the audit hook and runs the program as ``__main__``. The hook keeps its own references to
# the C functions it uses, so a program that monkeypatches ``os`` does not blind it.
_BOOTSTRAP = r'''
import builtins, json, os, posix, resource, stat, sys

def _install(config):
    scratch = config["scratch"]
    denied_exit, marker = config["denied_exit"], config["marker"]
    write, exit_now, getcwd = posix.write, posix._exit, posix.getcwd
    readlink, lstat, stat_ = posix.readlink, posix.lstat, posix.stat
    fspath, is_link, is_dir = posix.fspath, stat.S_ISLNK, stat.S_ISDIR
    isinstance_, str_, bytes_, int_ = builtins.isinstance, builtins.str, builtins.bytes, builtins.int
    repr_, any_ = builtins.repr, builtins.any
    encoding = sys.getfilesystemencoding()
    write_flags = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND
    writable_devices = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
    unix_family = 1  # AF_UNIX
    denied_events = frozenset({
        "subprocess.Popen", "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
        "os.startfile", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlsym",
        "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata", "gc.get_objects", "gc.get_referrers",
        "gc.get_referents", "os.chroot", "sys.remote_exec",
    })
    # event -> indexes of its path arguments (written or created), and of its dir_fd argument
    path_events = {
        "os.remove": ((0,), 1), "os.rmdir": ((0,), 1), "os.mkdir": ((0,), 2), "os.rename": ((0, 1), 2),
        "os.link": ((0, 1), 2), "os.symlink": ((1,), 2), "os.chmod": ((0,), 2), "os.chown": ((0,), 3),
        "os.chflags": ((0,), None), "os.lchflags": ((0,), None), "os.utime": ((0,), 3),
        "os.truncate": ((0,), None), "os.setxattr": ((0,), None), "os.removexattr": ((0,), None),
        "os.mkfifo": ((0,), 2), "os.mknod": ((0,), 3), "shutil.rmtree": ((0,), 1), "shutil.chown": ((0,), None),
        "shutil.copyfile": ((1,), None), "shutil.copytree": ((1,), None), "shutil.move": ((1,), None),
    }

    def resolve(path, dir_fd):
        if not path.startswith("/"):
            base = readlink("/proc/self/fd/%d" % dir_fd) if dir_fd is not None and dir_fd >= 0 else getcwd()
            path = base + "/" + path
        parts = [p for p in path.split("/") if p and p != "."]
        parts.reverse()
        resolved, hops = "", 0
        while parts:
            part = parts.pop()
            if part == "..":
                resolved = resolved.rsplit("/", 1)[0]
                continue
            candidate = resolved + "/" + part
            try:
                mode = lstat(candidate).st_mode
            except OSError:
                resolved = candidate
                continue
            if is_link(mode):
                hops += 1
                if hops > 40:
                    return candidate
                target = readlink(candidate)
                if target.startswith("/"):
                    resolved = ""
                for p in reversed(target.split("/")):
                    if p and p != ".":
                        parts.append(p)
                continue
            resolved = candidate
        return resolved or "/"

    def as_text(path):
        if isinstance_(path, int_):
            return None
        path = fspath(path)
        return path.decode(encoding, "surrogateescape") if isinstance_(path, bytes_) else path

    def inside(path, dir_fd=None):
        text = as_text(path)
        if text is None:
            return True  # an open file descriptor: opening it was checked
        if text in writable_devices:
            return True
        real = resolve(text, dir_fd)
        return real == scratch or real.startswith(scratch + "/")

    def deny(event, detail):
        try:
            write(2, ("\n%s denied %s: %s\n" % (marker, event, detail)).encode("utf-8", "replace"))
        finally:
            exit_now(denied_exit)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance_(path, int_):
                return
            writing = bool((flags or 0) & write_flags)
            writing = writing or (isinstance_(mode, str_) and any_(c in mode for c in "wax+"))
            if inside(path):
                return
            if writing:
                deny("open", "writing %s" % repr_(path))
            try:
                text = as_text(path)
                directory = text is not None and is_dir(stat_(text).st_mode)
            except OSError:
                directory = False
            if directory:
                deny("open", "the directory %s (outside the scratch directory)" % repr_(path))
        elif event in path_events:
            indexes, dir_index = path_events[event]
            dir_fd = args[dir_index] if dir_index is not None and dir_index < len(args) else None
            for index in indexes:
                if index < len(args) and args[index] is not None and not inside(args[index], dir_fd):
                    deny(event, repr_(args[index]))
        elif event == "socket.__new__" and len(args) > 1 and args[1] == unix_family:
            return  # a local socket pair (asyncio's self-pipe); connecting or binding one is still denied
        elif event in denied_events or event.startswith("socket."):
            deny(event, repr_(args)[:200])
        elif event == "ctypes.dlopen" and args and args[0] is not None:
            deny(event, repr_(args[0]))

    sys.addaudithook(hook)

def _main():
    config = json.loads(sys.argv[1])
    for name, value in config["limits"].items():
        hard = value + 1 if name == "RLIMIT_CPU" else value
        resource.setrlimit(getattr(resource, name), (value, hard))
    source = sys.stdin.buffer.read().decode("utf-8", "replace")
    try:
        code = compile(source, "program.py", "exec")
    except (SyntaxError, ValueError):
        import traceback
        traceback.print_exc(limit=0)
        sys.exit(1)
    sys.argv[:] = ["program.py"]
    import linecache
    linecache.cache["program.py"] = (len(source), None, source.splitlines(True), "program.py")
    _install(config)
    namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": "program.py"}
    try:
        exec(code, namespace)
    except MemoryError:
        posix.write(2, ("\n%s memory limit exceeded\n" % config["marker"]).encode())
        posix._exit(config["memory_exit"])
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        import traceback
        # The program's own frames only: the bootstrap is not the model's concern.
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.exit(1)

_main()
'''

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


@dataclass(frozen=True)
class ProgramRun:
    """How one guarded run ended."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    guarded: bool = True
    """Whether it ran in a network namespace."""

    @property
    def denied(self) -> str | None:
        """What the audit hooks stopped, when they stopped the program."""
        if self.returncode != DENIED_EXIT:
            return None
        for line in reversed(self.stderr.splitlines()):
            if line.startswith(f"{_MARKER} denied "):
                return line.removeprefix(f"{_MARKER} denied ")
        return None

    @property
    def out_of_memory(self) -> bool:
        return self.returncode == MEMORY_EXIT or (
            self.returncode not in (0, None) and "MemoryError" in self.stderr[-2000:]
        )

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def failure(self, *, timeout: float) -> str | None:
        """Why the run counts as a failure, in words; ``None`` when it exited 0."""
        if self.timed_out:
            return f"timed out after {timeout:g}s and was killed"
        if self.denied is not None:
            return f"attempted a forbidden operation and was stopped ({self.denied})"
        if self.out_of_memory:
            return "ran out of memory (memory limit exceeded)"
        code = self.returncode
        if code is not None and code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGXCPU:
                return "exceeded its CPU time limit (killed by SIGXCPU)"
            return f"was killed by {name}"
        if code != 0:
            return f"crashed (exit status {code})"
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_probed: dict[tuple[tuple[str, ...], ...], tuple[str, ...] | None] = {}


async def network_namespace(
    commands: Sequence[Sequence[str]] = DEFAULT_NAMESPACE_COMMANDS,
) -> tuple[str, ...] | None:
    """The first command prefix that enters a fresh network namespace on this machine, or ``None``.

    Probed once per process (``<prefix> true`` must succeed).
    """
    return await _namespace_prefix(tuple(tuple(command) for command in commands))


async def _namespace_prefix(commands: tuple[tuple[str, ...], ...]) -> tuple[str, ...] | None:
    if commands in _probed:
        return _probed[commands]
    found: tuple[str, ...] | None = None
    for command in commands:
        if not command or shutil.which(command[0]) is None:
            continue
        try:
            probe = await anyio.run_process([*command, "true"], check=False)
        except OSError:
            continue
        if probe.returncode == 0:
            found = command
            break
    _probed[commands] = found
    return found


def _make_scratch(root: str | None) -> str:
    return os.path.realpath(tempfile.mkdtemp(prefix="thinkloop-sandbox-", dir=root))


def _remove_tree(path: str) -> None:
    def retry(function: Callable[..., Any], target: str, _exc: object) -> None:
        # A program may have made its own files read-only; make them writable and try again.
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            function(target)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


class ProgramVerifier:
    """Accepts a candidate whose program runs to completion (exit status 0) under the guards above.

    Args:
        timeout: wall-clock seconds before the process group is killed.
        memory_mb: address-space limit (``RLIMIT_AS``) in MiB.
        cpu_seconds: CPU-time limit (``RLIMIT_CPU``).
        file_size_mb: largest file the program may write (``RLIMIT_FSIZE``), in MiB.
        expected: also require the program's printed answer (the answer extracted from its stdout) to equal
            this.
        match_answer: also require the program's printed answer to equal the candidate's answer.
        program: builds the program from ``(question, candidate)``; by default the candidate's ```` ```python ````
            blocks (see :func:`extract_program`).
        allow_unguarded: run without a network namespace where none can be had (and say so in the verdict)
            instead of raising :class:`SandboxUnavailable`.
        python: the interpreter to run (default: this one).
        namespace_commands: command prefixes that enter a network namespace, tried in order.
        max_output_bytes: how much of stdout and stderr to keep (the rest is read and dropped).
        scratch_root: where to create the scratch directories (default: the system's temporary directory).

    Raises:
        SandboxUnavailable: from ``verify`` when no network namespace can be had and ``allow_unguarded`` is
            false.
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
        namespace_commands: Sequence[Sequence[str]] = DEFAULT_NAMESPACE_COMMANDS,
        max_output_bytes: int = 64 * 1024,
        scratch_root: str | os.PathLike[str] | None = None,
    ) -> None:
        for name, value in (("timeout", timeout), ("memory_mb", memory_mb), ("cpu_seconds", cpu_seconds),
                            ("file_size_mb", file_size_mb), ("max_output_bytes", max_output_bytes)):
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
        self.namespace_commands = tuple(tuple(command) for command in namespace_commands)
        self.max_output_bytes = max_output_bytes
        self.scratch_root = None if scratch_root is None else os.fspath(scratch_root)

    def __repr__(self) -> str:
        return (
            f"ProgramVerifier(timeout={self.timeout:g}, memory_mb={self.memory_mb}, "
            f"cpu_seconds={self.cpu_seconds}, allow_unguarded={self.allow_unguarded})"
        )

    # --- running ------------------------------------------------------------------------------------------
    async def run(self, source: str) -> ProgramRun:
        """Run ``source`` under the guards and report how it ended.

        Raises:
            SandboxUnavailable: no network namespace here and ``allow_unguarded`` is false.
        """
        prefix = await _namespace_prefix(self.namespace_commands)
        if prefix is None and not self.allow_unguarded:
            tried = ", ".join(" ".join(c) for c in self.namespace_commands) or "none"
            raise SandboxUnavailable(
                f"ProgramVerifier cannot isolate the network here (no network namespace; tried: {tried}). "
                "Pass allow_unguarded=True to run model-written code without network isolation."
            )
        scratch = _make_scratch(self.scratch_root)
        try:
            return await self._run_in(scratch, source, prefix)
        finally:
            _remove_tree(scratch)

    async def _run_in(self, scratch: str, source: str, prefix: tuple[str, ...] | None) -> ProgramRun:
        mib = 1024 * 1024
        config = {
            "scratch": scratch,
            "denied_exit": DENIED_EXIT,
            "memory_exit": MEMORY_EXIT,
            "marker": _MARKER,
            "limits": {
                "RLIMIT_AS": self.memory_mb * mib,
                "RLIMIT_CPU": self.cpu_seconds,
                "RLIMIT_FSIZE": self.file_size_mb * mib,
                "RLIMIT_NOFILE": 256,
                "RLIMIT_CORE": 0,
            },
        }
        command = [*(prefix or ()), self.python, "-I", "-B", "-c", _BOOTSTRAP, json.dumps(config)]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": scratch,
            "TMPDIR": scratch,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        stdout, stderr = bytearray(), bytearray()
        timed_out = False
        process = await anyio.open_process(command, cwd=scratch, env=env, start_new_session=True)
        pipes = (process.stdin, process.stdout, process.stderr)
        try:
            stdin, out, err = pipes
            if stdin is None or out is None or err is None:
                raise RuntimeError("the sandboxed process has no pipes")
            drained = (anyio.Event(), anyio.Event())
            async with anyio.create_task_group() as group:
                group.start_soon(self._drain, out, stdout, drained[0])
                group.start_soon(self._drain, err, stderr, drained[1])
                try:
                    await stdin.send(source.encode("utf-8", "replace"))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass  # the bootstrap died before reading its program: its exit status says why
                finally:
                    await stdin.aclose()
                with anyio.move_on_after(self.timeout) as deadline:
                    await process.wait()
                if deadline.cancelled_caught:
                    timed_out = True
                    _kill_group(process.pid)
                    await process.wait()
                # Whatever the program left behind holding the pipes open goes with its process group.
                with anyio.move_on_after(1.0):
                    for event in drained:
                        await event.wait()
                if not all(event.is_set() for event in drained):
                    _kill_group(process.pid)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    _kill_group(process.pid)
                await process.aclose()
        return ProgramRun(
            returncode=process.returncode,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            timed_out=timed_out,
            guarded=prefix is not None,
        )

    async def _drain(self, stream: ByteReceiveStream, sink: bytearray, done: anyio.Event) -> None:
        """Read a pipe to its end, keeping the first ``max_output_bytes`` (a full pipe would stall the
        program)."""
        try:
            async for chunk in stream:
                room = self.max_output_bytes - len(sink)
                if room > 0:
                    sink.extend(chunk[:room])
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            done.set()

    # --- verifying ---------------------------------------------------------------------------------------
    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        source = self.program(question, candidate) if self.program is not None else extract_program(candidate.text)
        if not source.strip():
            return Verdict.reject("There is no program to run. Write the program in a ```python block.")
        run = await self.run(source)
        notes = [] if run.guarded else [
            "(ran WITHOUT network isolation: no network namespace is available here; allow_unguarded=True)"
        ]
        failure = run.failure(timeout=self.timeout)
        if failure is not None:
            detail = _tail(run.stderr) if run.denied is None else ""
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


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]
