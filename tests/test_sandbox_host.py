"""The host is untouchable: what issue 23 found a sandboxed program could still do to the machine, each a test.

Each test has a known-good program pass first with the same verifier, then the attack. Attacks that need the
kernel's side of things (what is mounted where, which calls are refused) report what they saw on stdout and the
test reads it; the verdict alone would not show that a limit held.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys
from pathlib import Path

import anyio
import pytest

from sandbox_harness import PRELUDE
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import ProgramVerifier, sandbox_unavailable_reason
from thinkloop.verifiers.sandbox import cgroup_unavailable_reason, remove_tree

pytestmark = pytest.mark.anyio
GOOD = "print(sum(range(10)))"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sandboxed() -> None:
    reason = await sandbox_unavailable_reason()
    if reason is not None:
        if os.environ.get("THINKLOOP_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"the sandbox is required here (THINKLOOP_REQUIRE_SANDBOX=1): {reason}")
        pytest.skip(reason)


async def run_json(verifier: ProgramVerifier, code: str) -> dict:  # type: ignore[type-arg]
    """Run ``code`` with the audit hook switched off (only the kernel stands), after a good program passed with
    the same verifier; it prints one JSON line last."""
    good = await verifier.verify("q", Candidate(text=f"```python\n{GOOD}\n```"))
    assert good.accepted, good.feedback
    run = await verifier.run(PRELUDE + "disarm()\n" + code)
    lines = run.stdout.strip().splitlines()
    assert lines, (run.returncode, run.stderr[-2000:])
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def attempt(expression: str) -> str:
    """Source of a function call that reports ``ok`` or the error's name and errno."""
    return (
        f"    try:\n        {expression}\n        seen.append('ok')\n"
        f"    except OSError as exc:\n        seen.append(f'{{type(exc).__name__}} {{exc.errno}}')\n"
    )


async def test_what_the_program_writes_never_lands_on_the_host(sandboxed: None, tmp_path: Path) -> None:
    code = (
        "import json, os, shutil, stat, sys\n"
        "report = {}\n"
        "shutil.copy(sys.executable, 'python-suid')\n"
        "os.chmod('python-suid', 0o4755)\n"
        "os.chmod('.', 0o777)\n"
        "mounts = open('/proc/self/mountinfo').read().splitlines()\n"
        "report['scratch'] = [m for m in mounts if m.split()[4] == '/scratch']\n"
        "report['everything'] = '\\n'.join(mounts)\n"
        "report['cwd'] = os.getcwd()\n"
        "def seen_in(path):\n"
        "    seen = []\n"
        "    try:\n"
        "        open(path + '/planted', 'w').write('x')\n"
        "        seen.append('ok')\n"
        "    except OSError as exc:\n"
        "        seen.append(exc.errno)\n"
        "    return seen\n"
        "report['root'], report['shm'], report['dev'] = seen_in(''), seen_in('/dev/shm'), seen_in('/dev')\n"
        "print(json.dumps(report))\n"
    )
    root = tmp_path / "scratch-root"
    root.mkdir()
    report = await run_json(ProgramVerifier(timeout=10, scratch_root=root), code)
    assert report["cwd"] == "/scratch"
    (scratch,) = report["scratch"]
    assert " - tmpfs " in scratch and "nosuid" in scratch.split()[5], scratch  # its own tmpfs, setuid ignored
    assert str(tmp_path) not in report["everything"] and "thinkloop-sandbox-" not in report["everything"]
    assert report["root"] == report["shm"] == report["dev"] == [30]  # EROFS: / and /dev (so /dev/shm) are read-only
    assert os.listdir(root) == []


async def test_writable_filesystems_have_a_size_limit(sandboxed: None) -> None:
    code = (
        "import json, os\n"
        "report = {}\n"
        "for folder in ('/scratch', '/tmp'):\n"
        "    written = 0\n"
        "    try:\n"
        "        with open(folder + '/big', 'wb') as f:\n"
        "            for _ in range(64):\n"
        "                f.write(b'x' * 2**20)\n"
        "                f.flush()\n"
        "                written += 1\n"
        "    except OSError as exc:\n"
        "        report[folder] = [written, exc.errno]\n"
        "    os.remove(folder + '/big')\n"
        "print(json.dumps(report))\n"
    )
    verifier = ProgramVerifier(timeout=10, scratch_mb=8, tmp_mb=4, file_size_mb=1024)
    report = await run_json(verifier, code)
    assert report["/scratch"][1] == report["/tmp"][1] == 28, report  # ENOSPC
    assert report["/scratch"][0] <= 8 and report["/tmp"][0] <= 4


async def test_memory_no_filesystem_counts_and_foreign_sockets_cannot_be_made(sandboxed: None) -> None:
    code = (
        "import json, os, socket\n"
        "seen = []\n"
        "def tries():\n"
        + attempt("os.memfd_create('hidden')")
        + attempt("socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)")
        + attempt("socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)")
        + attempt("socket.socket(socket.AF_PACKET, socket.SOCK_RAW)")
        + attempt("socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()")
        + attempt("socket.socketpair()[0].close()")
        + "tries()\nprint(json.dumps(seen))\n"
    )
    seen = await run_json(ProgramVerifier(timeout=10), code)
    # EPERM for memfd_create, EAFNOSUPPORT for the foreign families; loopback TCP and socketpair still work
    assert seen == ["PermissionError 1", "OSError 97", "OSError 97", "OSError 97", "ok", "ok"], seen


async def test_root_only_proc_files_are_not_readable(sandboxed: None) -> None:
    names = [
        n
        for n in ("vmallocinfo", "slabinfo", "pagetypeinfo", "kallsyms", "modules", "sched_debug")
        if os.path.exists(f"/proc/{n}") and not os.stat(f"/proc/{n}").st_mode & stat.S_IROTH
    ]
    if not names:
        pytest.skip("this kernel has none of the root-only /proc files tried here")
    code = (
        "import json\nread = {}\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        read[name] = len(open('/proc/' + name, 'rb').read())\n"
        "    except OSError as exc:\n"
        "        read[name] = exc.strerror\n"
        "print(json.dumps(read))\n"
    )
    read = await run_json(ProgramVerifier(timeout=10), code)
    assert all(value in (0, "Permission denied") for value in read.values()), read


@pytest.fixture
def cgroup(sandboxed: None) -> None:
    reason = cgroup_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no cgroup for the sandbox here ({reason}); docs/sandbox.md says what that leaves")


async def test_with_a_cgroup_memory_is_bounded_in_total_kernel_memory_for_files_included(cgroup: None) -> None:
    code = "import os\nn = 0\nwhile True:\n    os.mkdir(f'/tmp/{n}')\n    n += 1\n"
    verifier = ProgramVerifier(timeout=30, memory_mb=64, tmp_mb=1, scratch_mb=1, cpu_seconds=60)
    good = await verifier.verify("q", Candidate(text=GOOD))
    assert good.accepted, good.feedback
    verdict = await verifier.verify("q", Candidate(text=code))
    assert "ran out of memory (the sandbox's total memory limit" in (verdict.feedback or ""), verdict.feedback


async def test_with_a_cgroup_threads_are_bounded_even_as_root(cgroup: None) -> None:
    code = (
        "import json, threading, time\nstarted = 0\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(json.dumps(started))\n"
    )
    started = await run_json(ProgramVerifier(timeout=10, max_processes=16), code)
    assert 0 < started < 16  # type: ignore[operator]


# --- clean-up of the host folder (runs without the sandbox) --------------------------------------------------


def test_clean_up_never_follows_links_and_survives_depth_and_modes(tmp_path: Path) -> None:
    host_file = tmp_path / "host-file"
    host_file.write_text("keep")
    host_file.chmod(0o600)
    host_folder = tmp_path / "host-folder"
    host_folder.mkdir()
    (host_folder / "inside").write_text("keep")
    host_folder.chmod(0o500)
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "link-to-file").symlink_to(host_file)
    (tree / "a" / "link-to-folder").symlink_to(host_folder)
    (tree / "a" / "b" / "locked").mkdir()
    (tree / "a" / "b" / "locked").chmod(0)
    (tree / "a" / "b").chmod(0o500)
    folder = os.open(tree, os.O_RDONLY)
    for _ in range(3000):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=folder)
        below = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = below
    os.close(folder)
    remove_tree(str(tree))
    assert not tree.exists()
    assert host_file.read_text() == "keep" and stat.S_IMODE(host_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(host_folder.stat().st_mode) == 0o500 and (host_folder / "inside").exists()
    host_folder.chmod(0o700)
    remove_tree(str(tmp_path / "never-was"))  # gone already: quiet


async def test_an_unguarded_run_that_plants_links_and_locks_folders_still_cleans_up(tmp_path: Path) -> None:
    host_file = tmp_path / "host-file"
    host_file.write_text("keep")
    host_file.chmod(0o600)
    root = tmp_path / "scratch-root"
    root.mkdir()
    code = (
        "import os\n"
        f"os.symlink({str(host_file)!r}, 'link')\n"
        "os.mkdir('locked')\nos.chmod('locked', 0)\n"
        "os.makedirs('x/y')\nos.chmod('x', 0o500)\n"
        "print('planted')\n"
    )
    verifier = ProgramVerifier(timeout=10, scratch_root=root, bwrap="/nonexistent/bwrap", allow_unguarded=True)
    verdict = await verifier.verify("q", Candidate(text=code))
    assert verdict.accepted and "planted" in (verdict.feedback or "")
    assert os.listdir(root) == []
    assert stat.S_IMODE(host_file.stat().st_mode) == 0o600


# --- zombies ------------------------------------------------------------------------------------------------

SUBREAPER = r"""
import anyio, ctypes, json, os, sys
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import ProgramVerifier

PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

async def main():
    verifier = ProgramVerifier(timeout=1.5)
    for code in ["print(1)", "while True: pass", "import os\nwhile True: os.write(1, b'x' * 65536)"]:
        await verifier.verify("q", Candidate(text=code))
    zombies = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                zombies.append(int(entry))
    print(json.dumps(zombies))

anyio.run(main)
"""


async def test_the_caller_is_never_left_with_zombies_even_as_a_subreaper(sandboxed: None) -> None:
    """As a container's PID 1 (here: a subreaper, which the kernel treats alike) orphans come to the caller."""
    if ctypes.CDLL(None).prctl is None:  # pragma: no cover - Linux only
        pytest.skip("needs prctl")
    done = await anyio.run_process([sys.executable, "-c", SUBREAPER], check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout) == []


# --- where the cgroup goes ----------------------------------------------------------------------------------

V2_ONLY = "0::/user.slice/session-1.scope\n"
V2_MOUNTS = "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID = "8:pids:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n"
HYBRID_MOUNTS = (
    "40 30 0:40 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "41 30 0:41 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    "42 30 0:42 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)


def test_cgroup_v2_is_used_only_where_memory_and_pids_are_delegated() -> None:
    from thinkloop.verifiers.sandbox.cgroup import parse_layout

    folder = "/sys/fs/cgroup/user.slice/session-1.scope"
    layout = parse_layout(V2_ONLY, V2_MOUNTS, delegated=lambda f: {"memory", "pids", "cpu"}, writable=lambda f: True)
    assert not isinstance(layout, str) and (layout.version, layout.memory, layout.pids) == (2, folder, folder)
    refused = parse_layout(V2_ONLY, V2_MOUNTS, delegated=lambda f: {"cpu"}, writable=lambda f: True)
    assert refused == "no writable cgroup with the memory and pids controllers for the caller"


def test_cgroup_v1_paths_are_found_in_their_hierarchies_cgroup_namespaces_included() -> None:
    from thinkloop.verifiers.sandbox.cgroup import parse_layout

    layout = parse_layout(HYBRID, HYBRID_MOUNTS, delegated=lambda f: set(), writable=lambda f: True)
    assert not isinstance(layout, str) and layout.version == 1
    assert layout.memory == "/sys/fs/cgroup/memory/docker/abc"
    assert layout.pids == "/sys/fs/cgroup/pids"  # the hierarchy is mounted at the caller's own cgroup
    assert isinstance(parse_layout(HYBRID, HYBRID_MOUNTS, delegated=lambda f: set(), writable=lambda f: False), str)


async def test_a_cgroup_that_cannot_be_joined_is_given_up_and_the_run_goes_on(
    cgroup: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thinkloop.verifiers.sandbox import cgroup as module

    saved = list(module._layout)
    monkeypatch.setattr(
        module.Cgroup, "wrap", lambda self, argv: ["/bin/sh", "-c", module._WRAPPER, "sh", "/proc/version", "--", *argv]
    )
    try:
        verdict = await ProgramVerifier(timeout=10).verify("q", Candidate(text=GOOD))
        assert verdict.accepted, verdict.feedback
        assert (cgroup_unavailable_reason() or "").startswith("cannot join a new cgroup")
    finally:
        module._layout[:] = saved
