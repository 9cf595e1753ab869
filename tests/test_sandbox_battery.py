"""The battery the old sandbox already stopped, now held by the kernel as well as explained by the hook.

Each attack runs twice: as written (the audit hook stops it with a clear reason) and after switching the hook
off (``disarm()``, see ``sandbox_harness``), where only the kernel stands. Either way it must stop within its
limit plus a second, write nothing outside the scratch folder, reach nothing on the host and leave no process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_harness import Host, attack, host_with_secrets
from thinkloop.verifiers import ProgramVerifier, sandbox_unavailable_reason
from thinkloop.verifiers.sandbox import cgroup_unavailable_reason

pytestmark = pytest.mark.anyio
TIME_LIMIT = 2.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def host() -> Iterator[Host]:
    reason = await sandbox_unavailable_reason()
    if reason is not None:
        if os.environ.get("THINKLOOP_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"the sandbox is required here (THINKLOOP_REQUIRE_SANDBOX=1): {reason}")
        pytest.skip(reason)
    with host_with_secrets() as host:
        yield host


def verifier(tmp_path: Path, **options: object) -> ProgramVerifier:
    root = tmp_path / "scratch"
    root.mkdir(exist_ok=True)
    options.setdefault("timeout", TIME_LIMIT)
    return ProgramVerifier(scratch_root=root, **options)  # type: ignore[arg-type]


hook = pytest.mark.parametrize("prefix", ["", "disarm()\n"], ids=["hook-on", "hook-off"])


@hook
async def test_an_infinite_loop_is_killed_at_the_time_limit(host: Host, tmp_path: Path, prefix: str) -> None:
    outcome = await attack(verifier(tmp_path, cpu_seconds=600), host, prefix + "while True:\n    pass\n")
    assert (outcome.verdict.feedback or "").startswith("The program timed out after 2s")
    assert outcome.seconds >= TIME_LIMIT


@hook
async def test_a_fork_bomb_starts_nothing(host: Host, tmp_path: Path, prefix: str) -> None:
    code = prefix + "while True:\n    os.fork()\n"
    outcome = await attack(verifier(tmp_path), host, code)
    feedback = outcome.verdict.feedback or ""
    expected = "was stopped (os.fork" if not prefix else "PermissionError: [Errno 1] Operation not permitted"
    assert expected in feedback, feedback


@pytest.mark.skipif(
    os.geteuid() == 0 and cgroup_unavailable_reason() is not None,
    reason="as root without a cgroup, RLIMIT_NPROC does not count (see docs/sandbox.md)",
)
async def test_with_processes_allowed_a_fork_bomb_is_capped_by_the_process_limit(host: Host, tmp_path: Path) -> None:
    code = (
        "disarm()\nimport time\nchildren = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "        children += 1\n"
        "except OSError as exc:\n"
        "    print('stopped after', children, exc)\n"
    )
    outcome = await attack(verifier(tmp_path, allow_processes=True, max_processes=16), host, code)
    assert "stopped after" in (outcome.verdict.feedback or "")


@hook
async def test_ten_gigabytes_are_refused(host: Host, tmp_path: Path, prefix: str) -> None:
    outcome = await attack(verifier(tmp_path, memory_mb=256), host, prefix + "x = bytearray(10 * 2**30)\n")
    assert "ran out of memory" in (outcome.verdict.feedback or "")


@hook
async def test_a_gigabyte_of_output_is_cut_off(host: Host, tmp_path: Path, prefix: str) -> None:
    code = prefix + "chunk = b'x' * 2**20\nfor _ in range(1024):\n    os.write(1, chunk)\n"
    outcome = await attack(verifier(tmp_path, max_output_bytes=2**20), host, code)
    assert "printed more than its output limit (1048576 bytes)" in (outcome.verdict.feedback or "")


@hook
async def test_open_cannot_write_outside_the_scratch_folder(host: Host, tmp_path: Path, prefix: str) -> None:
    code = prefix + "open(OUTSIDE + '/escaped.txt', 'w').write('escaped')\n"
    outcome = await attack(verifier(tmp_path), host, code)
    assert not outcome.verdict.accepted


@hook
@pytest.mark.parametrize("where", ["127.0.0.1", "UNROUTABLE"])
async def test_sockets_reach_nothing(host: Host, tmp_path: Path, prefix: str, where: str) -> None:
    address = "('127.0.0.1', PORT)" if where == "127.0.0.1" else "(UNROUTABLE, 80)"
    code = prefix + f"import socket\nsocket.create_connection({address}, timeout=1)\nprint('connected')\n"
    outcome = await attack(verifier(tmp_path), host, code)
    assert not outcome.verdict.accepted
    assert "connected" not in (outcome.verdict.feedback or "").splitlines()


@hook
async def test_the_parent_cannot_be_killed(host: Host, tmp_path: Path, prefix: str) -> None:
    code = prefix + (
        "import signal\n"
        "for pid in (os.getppid(), CALLER):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGUSR1)\n"
        "    except OSError as exc:\n"
        "        print(pid, exc)\n"
    )
    await attack(verifier(tmp_path), host, code)
