"""What the sandbox tests share: a host with things worth stealing, hostile programs, and the checks after.

A :class:`Host` holds a fake API key in the caller's environment, a file in the user's home folder, a folder
outside the scratch folder, a TCP listener on the host's 127.0.0.1 and a handler counting ``SIGUSR1`` sent to
the caller. :func:`attack` runs a hostile program through the real :class:`ProgramVerifier` and then checks
everything the issue asks: stopped within its time limit plus a second, nothing written outside the scratch
folder, no secret in the verdict, no process left (a ``/proc`` scan for a marker in command lines), nothing
connected to the host, the caller not signalled.

The programs get these names: ``CALLER`` (the caller's pid), ``HOME_FILE``, ``OUTSIDE``, ``PORT``, ``MARKER``,
``PYTHON`` (the interpreter, visible in the sandbox), and two helpers: ``disarm()`` switches the audit hook off
the way the issue found (a frame reachable from an ``__fspath__`` call, then the hook's closure cells
overwritten), ``spawn(argv, new_session=False)`` starts a process through ``_posixsubprocess.fork_exec``
directly (no audit event).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from thinkloop.exceptions import SandboxUnavailable
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import ProgramVerifier, Verdict

SECRET_VARIABLE = "THINKLOOP_FAKE_API_KEY"
UNROUTABLE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): routed nowhere, so even a broken guard reaches no one

PRELUDE = r"""
import os, sys

def disarm():
    import shutil

    class Key:
        def __fspath__(self):
            frame = sys._getframe(1)
            while frame is not None and "deny" not in frame.f_locals:
                frame = frame.f_back
            if frame is None:
                return "/nonexistent-thinkloop"  # no hook here
            deny = frame.f_locals["deny"]
            for name, cell in zip(deny.__code__.co_freevars, deny.__closure__):
                if name == "exit_now":
                    cell.cell_contents = lambda status: None
                elif name == "write":
                    cell.cell_contents = lambda fd, data: len(data)
            return "/nonexistent-thinkloop"

    shutil.rmtree(Key(), ignore_errors=True)

def spawn(argv, new_session=False):
    import _posixsubprocess
    errpipe_read, errpipe_write = os.pipe()
    args = [argv, [os.fsencode(argv[0])], True, (), None, None, -1, -1, -1, -1, -1, -1,
            errpipe_read, errpipe_write, True, new_session, -1, None, None, -1, -1, None, True]
    try:
        pid = _posixsubprocess.fork_exec(*args)
    except TypeError:  # Python 3.12+: one argument fewer
        pid = _posixsubprocess.fork_exec(*args[:-1])
    os.close(errpipe_write)
    return pid
"""


@dataclass
class Host:
    """The caller's side: what a sandboxed program must not reach."""

    secret: str
    home_file: Path
    outside: Path
    listener: socket.socket
    marker: str
    signals: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def program(self, code: str) -> str:
        names = (
            f"CALLER = {os.getpid()}\nHOME_FILE = {str(self.home_file)!r}\nOUTSIDE = {str(self.outside)!r}\n"
            f"PORT = {self.port}\nMARKER = {self.marker!r}\nPYTHON = {sys.executable!r}\n"
            f"UNROUTABLE = {UNROUTABLE!r}\n"
        )
        return PRELUDE + names + code

    def connections(self) -> int:
        count = 0
        while True:
            try:
                accepted, _ = self.listener.accept()
            except BlockingIOError:
                return count
            accepted.close()
            count += 1


@contextmanager
def host_with_secrets() -> Iterator[Host]:
    token = secrets.token_hex(8)
    secret = f"sk-thinkloop-FAKE-{token}"
    home_file = Path.home() / f".thinkloop-sandbox-test-{token}"
    home_file.write_text(f"api_key = {secret}\n")
    outside = Path(tempfile.mkdtemp(prefix="thinkloop-outside-", dir="/var/tmp"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    host = Host(
        secret=secret, home_file=home_file, outside=outside, listener=listener, marker=f"thinkloop-marker-{token}"
    )
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: host.signals.append(number))
    saved = os.environ.get(SECRET_VARIABLE)
    os.environ[SECRET_VARIABLE] = secret
    try:
        yield host
    finally:
        if saved is None:
            os.environ.pop(SECRET_VARIABLE, None)
        else:
            os.environ[SECRET_VARIABLE] = saved
        signal.signal(signal.SIGUSR1, previous)
        listener.close()
        shutil.rmtree(outside, ignore_errors=True)
        home_file.unlink(missing_ok=True)
        kill_marked(host.marker)


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    seconds: float


async def attack(verifier: ProgramVerifier, host: Host, code: str) -> Outcome:
    """Run a hostile program and check that nothing got out (see the module docstring)."""
    started = time.monotonic()
    verdict = await verifier.verify("q", Candidate(text=f"```python\n{host.program(code)}\n```"))
    seconds = time.monotonic() - started
    assert seconds <= verifier.timeout + 1.0, f"the caller was held {seconds:.2f}s (limit {verifier.timeout:g}s)"
    assert_contained(verifier, host, verdict)
    return Outcome(verdict=verdict, seconds=seconds)


def assert_contained(verifier: ProgramVerifier, host: Host, verdict: Verdict) -> None:
    feedback = verdict.feedback or ""
    assert host.secret not in feedback, "the fake API key reached the verdict"
    assert os.listdir(host.outside) == [], f"written outside the scratch folder: {os.listdir(host.outside)}"
    assert host.home_file.read_text() == f"api_key = {host.secret}\n", "the home file was changed"
    assert host.connections() == 0, "a sandboxed program connected to the host's 127.0.0.1"
    assert host.signals == [], "the caller was signalled"
    left = marked_processes(host.marker)  # gone by the time the verdict is back, not a moment later
    assert left == [], f"processes left running after the verdict: {left}"
    if verifier.scratch_root is not None:
        assert os.listdir(verifier.scratch_root) == [], "the scratch folder was not removed"


def marked_processes(marker: str, *, wait: float = 0.0) -> list[int]:
    """Live processes with ``marker`` in their command line; polls up to ``wait`` seconds for them to go."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if marker.encode() in cmdline:
                    found.append(int(entry))
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def kill_marked(marker: str) -> None:
    """Clean up after a failed test (against a broken sandbox), so it does not leave sleepers behind."""
    for pid in marked_processes(marker):
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def working_sandbox(timeout: float = 10) -> ProgramVerifier:
    """A verifier whose sandbox has run a program here; a skip where none can (a failure under CI's
    ``THINKLOOP_REQUIRE_SANDBOX=1``)."""
    import anyio
    import pytest

    verifier = ProgramVerifier(timeout=timeout)
    try:
        anyio.run(verifier.run, "pass")
    except SandboxUnavailable as exc:
        if os.environ.get("THINKLOOP_REQUIRE_SANDBOX") == "1":  # CI: a missing sandbox is a failure
            pytest.fail(f"the sandbox is required here (THINKLOOP_REQUIRE_SANDBOX=1): {exc}")
        pytest.skip(f"no sandbox here: {exc}")
    return verifier
