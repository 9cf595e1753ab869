"""Every escape issue 17 found in the old sandbox (network namespace + rlimits + audit hooks) is a test here.

Each hostile program runs through the real :class:`ProgramVerifier`, the way a strategy hands it model output,
and :func:`sandbox_harness.attack` checks that nothing got out: no secret in the verdict, nothing written
outside the scratch folder, nothing connected to the host, no process left, the caller not signalled and not
held past the time limit plus a second. A known-good program passes first. Where the fix has two layers (the
seccomp filter refuses to start processes; the namespaces contain the processes when they are allowed), the
test runs with ``allow_processes`` off and on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_harness import SECRET_VARIABLE, Host, attack, host_with_secrets, marked_processes
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import ProgramVerifier, sandbox_unavailable_reason

pytestmark = pytest.mark.anyio
TIME_LIMIT = 3.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the runner is tested on trio in test_program_verifier.py; these are about the kernel


@pytest.fixture
async def sandbox() -> None:
    reason = await sandbox_unavailable_reason()
    if reason is not None:
        if os.environ.get("THINKLOOP_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"the sandbox is required here (THINKLOOP_REQUIRE_SANDBOX=1): {reason}")
        pytest.xfail(f"no sandbox on this machine: {reason}")


@pytest.fixture
def host(sandbox: None) -> Iterator[Host]:
    with host_with_secrets() as host:
        yield host


def verifier(tmp_path: Path, **options: object) -> ProgramVerifier:
    root = tmp_path / "scratch"
    root.mkdir(exist_ok=True)
    return ProgramVerifier(timeout=TIME_LIMIT, scratch_root=root, **options)  # type: ignore[arg-type]


processes = pytest.mark.parametrize("allow_processes", [False, True], ids=["no-processes", "processes-allowed"])


async def test_a_known_good_program_passes_first(host: Host, tmp_path: Path) -> None:
    code = (
        "import tempfile\n"
        "open('answer.txt', 'w').write('42')\n"
        "with tempfile.TemporaryFile() as scratch:\n"
        "    scratch.write(b'temporary files work')\n"
        "print('Answer:', open('answer.txt').read())\n"
    )
    outcome = await attack(verifier(tmp_path, expected="42"), host, code)
    assert outcome.verdict.accepted, outcome.verdict.feedback


DRIVER = """
import anyio, json, sys
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import ProgramVerifier

async def main():
    verifier = ProgramVerifier(timeout=float(sys.argv[2]), scratch_root=sys.argv[1])
    verdict = await verifier.verify("q", Candidate(text=sys.stdin.read()))
    print(json.dumps({"accepted": verdict.accepted, "feedback": verdict.feedback}))

anyio.run(main)
"""


async def test_the_callers_environment_is_not_visible_through_proc(host: Host, tmp_path: Path) -> None:
    """An API key exported in the caller's environment: /proc/<pid>/environ shows a process's environment as
    it was started, so the caller here is a fresh process started with the key."""
    program = host.program(
        "found = []\n"
        "pid = os.getpid()\n"
        "for candidate in [pid, 1, CALLER] + list(range(2, 8)):\n"
        "    for p in (candidate, os.getppid()):\n"
        "        try:\n"
        "            found += [v for v in open(f'/proc/{p}/environ', 'rb').read().decode().split('\\0')\n"
        f"                      if v.startswith({SECRET_VARIABLE!r})]\n"
        "        except OSError:\n"
        "            pass\n"
        "print('found:', sorted(set(found)))\n"
    )
    root = tmp_path / "scratch"
    root.mkdir()
    env = {**os.environ, SECRET_VARIABLE: host.secret}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(root), str(TIME_LIMIT)],
        input=f"```python\n{program}\n```",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    verdict = json.loads(done.stdout)
    assert "found: []" in verdict["feedback"], verdict["feedback"]
    assert host.secret not in done.stdout + done.stderr


async def test_files_in_the_home_folder_are_not_visible(host: Host, tmp_path: Path) -> None:
    code = (
        "try:\n"
        "    print(open(HOME_FILE).read())\n"
        "except OSError as exc:\n"
        "    print('could not read:', exc)\n"
        "home = os.path.dirname(HOME_FILE)\n"
        "print(os.path.basename(HOME_FILE) in (os.listdir(home) if os.path.isdir(home) else []))\n"
    )
    outcome = await attack(verifier(tmp_path), host, code)
    assert "could not read" in (outcome.verdict.feedback or "")
    assert (outcome.verdict.feedback or "").rstrip().endswith("False")


async def test_sqlite_cannot_write_outside_the_scratch_folder(host: Host, tmp_path: Path) -> None:
    """sqlite opens its file in C: no ``open`` audit event."""
    code = (
        "import sqlite3\ndb = sqlite3.connect(OUTSIDE + '/stolen.db')\ndb.execute('create table t (x)')\ndb.commit()\n"
    )
    outcome = await attack(verifier(tmp_path), host, code)
    assert not outcome.verdict.accepted


@processes
async def test_fork_exec_cannot_start_a_shell_that_writes(host: Host, tmp_path: Path, allow_processes: bool) -> None:
    code = (
        "pid = spawn(['/bin/sh', '-c', 'echo escaped > ' + OUTSIDE + '/shell.txt'])\n"
        "print('shell exit status', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    await attack(verifier(tmp_path, allow_processes=allow_processes), host, code)


@processes
async def test_nsenter_cannot_reenter_the_host_network(host: Host, tmp_path: Path, allow_processes: bool) -> None:
    code = (
        "connect = f'import socket; socket.create_connection((\"127.0.0.1\", {PORT}), timeout=2)'\n"
        "pid = spawn(['/usr/bin/nsenter', f'--net=/proc/{CALLER}/ns/net', PYTHON, '-I', '-c', connect])\n"
        "print('nsenter exit status', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    await attack(verifier(tmp_path, allow_processes=allow_processes), host, code)


@processes
async def test_a_child_left_in_a_new_session_dies_with_the_program(
    host: Host, tmp_path: Path, allow_processes: bool
) -> None:
    sleeper = "import os, time; null = os.open('/dev/null', os.O_WRONLY); os.dup2(null, 1); os.dup2(null, 2); "
    sleeper += "time.sleep(30)"
    code = f"spawn([PYTHON, '-c', {sleeper!r}, MARKER], new_session=True)\nprint('left a child behind')\n"
    await attack(verifier(tmp_path, allow_processes=allow_processes), host, code)


@processes
async def test_a_child_holding_the_output_pipe_does_not_hold_the_caller(
    host: Host, tmp_path: Path, allow_processes: bool
) -> None:
    code = "spawn([PYTHON, '-c', 'import time; time.sleep(20)', MARKER], new_session=True)\nprint('holding stdout')\n"
    await attack(verifier(tmp_path, allow_processes=allow_processes), host, code)


async def test_switching_the_audit_hook_off_gains_nothing(host: Host, tmp_path: Path) -> None:
    """The hook's frame is reachable and its closure cells writable: with it off, the kernel still holds."""
    code = (
        "import ctypes, signal, socket\n"
        "disarm()\n"
        "socket.socket().close()\n"
        "print('the hook is off')\n"
        "def attempt(name, action):\n"
        "    try:\n"
        "        print(name, action())\n"
        "    except OSError as exc:\n"
        "        print(name, 'refused:', exc)\n"
        "def fork():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.execv('/bin/sh', ['/bin/sh', '-c', 'echo escaped > ' + OUTSIDE + '/forked.txt'])\n"
        "    return os.waitpid(pid, 0)\n"
        "attempt('fork', fork)\n"
        "attempt('kill the caller', lambda: os.kill(CALLER, signal.SIGUSR1))\n"
        "attempt('kill the parent', lambda: os.kill(os.getppid(), signal.SIGUSR1))\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def setns():\n"
        "    fd = os.open(f'/proc/{CALLER}/ns/net', os.O_RDONLY)\n"
        "    if libc.setns(fd, 0) != 0:\n"
        "        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n"
        "attempt('setns', setns)\n"
        "attempt('connect to the host', lambda: socket.create_connection(('127.0.0.1', PORT), timeout=1))\n"
        "attempt('connect outside', lambda: socket.create_connection((UNROUTABLE, 80), timeout=1))\n"
    )
    outcome = await attack(verifier(tmp_path), host, code)
    feedback = outcome.verdict.feedback or ""
    assert "the hook is off" in feedback and "forbidden operation" not in feedback, feedback


async def test_pidfd_send_signal_cannot_reach_the_caller(host: Host, tmp_path: Path) -> None:
    code = (
        "import signal\n"
        "try:\n"
        "    signal.pidfd_send_signal(os.pidfd_open(CALLER), signal.SIGUSR1)\n"
        "    print('signalled the caller')\n"
        "except OSError as exc:\n"
        "    print('refused:', exc)\n"
    )
    await attack(verifier(tmp_path), host, code)


async def test_a_timeout_kills_the_children_too(host: Host, tmp_path: Path) -> None:
    code = "spawn([PYTHON, '-c', 'import time; time.sleep(30)', MARKER], new_session=True)\nwhile True:\n    pass\n"
    outcome = await attack(verifier(tmp_path, allow_processes=True), host, code)
    assert (outcome.verdict.feedback or "").startswith("The program timed out after 3s")


async def test_when_the_caller_dies_the_sandbox_dies_with_it(host: Host, tmp_path: Path) -> None:
    """``--die-with-parent``: a caller killed outright (SIGKILL, no cleanup) takes its sandboxes with it."""
    program = host.program(
        "spawn([PYTHON, '-c', 'import time; time.sleep(30)', MARKER], new_session=True)\n"
        "print('ready', flush=True)\nimport time\ntime.sleep(30)\n"
    )
    root = tmp_path / "scratch"
    root.mkdir()
    driver = DRIVER.replace("ProgramVerifier(", "ProgramVerifier(allow_processes=True, ")
    caller = subprocess.Popen(
        [sys.executable, "-c", driver, str(root), "60"],
        stdin=subprocess.PIPE,
        text=True,
    )
    assert caller.stdin is not None
    caller.stdin.write(f"```python\n{program}\n```")
    caller.stdin.close()
    try:
        deadline = time.monotonic() + 20
        while not marked_processes(host.marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marked_processes(host.marker), "the sandboxed child never started"
    finally:
        caller.kill()
        caller.wait()
    assert marked_processes(host.marker, wait=2.0) == [], "the sandbox outlived its caller"


async def test_without_the_sandbox_a_pipe_holder_still_does_not_hold_the_caller(host: Host, tmp_path: Path) -> None:
    """Time and output are bounded by the runner itself, even unguarded (where the child is not killed)."""
    unguarded = verifier(tmp_path, bwrap="/nonexistent/bwrap", allow_unguarded=True)
    code = "disarm()\nspawn([PYTHON, '-c', 'import time; time.sleep(20)', MARKER], new_session=True)\n"
    started = time.monotonic()
    verdict = await unguarded.verify("q", Candidate(text=f"```python\n{host.program(code)}\n```"))
    assert time.monotonic() - started <= TIME_LIMIT + 1.0
    assert verdict.accepted and "ran WITHOUT the sandbox" in (verdict.feedback or "")
