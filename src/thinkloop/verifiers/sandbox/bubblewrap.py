"""The bubblewrap command line that puts one program in its own namespaces with a read-only view of Python.

bubblewrap (``bwrap``, Debian's ``bubblewrap`` package; what Flatpak uses) does the kernel work: new user, PID,
mount, IPC, network, UTS and cgroup namespaces; every capability dropped; a root filesystem made of read-only
binds of ``/usr`` (and the ``/lib*`` / ``/bin`` links), the interpreter's prefixes and a few ``/etc`` files the
dynamic linker reads; a fresh ``/proc`` for the new PID namespace, a minimal ``/dev``, size-capped tmpfs ``/tmp``
and ``/scratch`` as the only writable places (``/`` and ``/dev`` read-only); an empty environment. The PID
namespace's init is the program itself (``--as-pid-1``): when it exits, or the caller kills the sandbox, the
kernel kills every process left in the namespace.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import anyio

from thinkloop.exceptions import ConfigurationError

__all__ = ["SCRATCH", "SandboxCommand", "bubblewrap_command", "probe", "python_roots"]

SCRATCH = "/scratch"
"""Where the scratch folder is mounted inside the sandbox (the program's working folder and ``HOME``)."""
SANDBOX_UID = 65534
"""The program's user id inside its user namespace ("nobody"); outside, it is the caller's own user."""

_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")
# Global kernel knobs and kernel memory in /proc. The program holds no capabilities, but as root its
# processes are uid 0 outside the namespace, which is enough to write /proc/sys (e.g. kernel.core_pattern):
# these are covered by an empty read-only tmpfs (folders) or /dev/null (files), as container runtimes do.
_PROC_HIDDEN_DIRS = ("sys", "fs", "bus", "irq", "acpi", "scsi", "asound", "driver")
_PROC_HIDDEN_FILES = (
    "sysrq-trigger",
    "kcore",
    "kmsg",
    "keys",
    "timer_list",
    "latency_stats",
    "sched_debug",
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
)


@functools.cache
def _root_only_proc_files() -> tuple[str, ...]:
    """The top-level files of ``/proc`` that only root may read (``vmallocinfo``, ``slabinfo``, ...): as root,
    the program's processes are uid 0 outside their namespace, which is enough to read them."""
    found = set(_PROC_HIDDEN_FILES)
    try:
        names = os.listdir("/proc")
    except OSError:
        return tuple(sorted(found))
    for name in names:
        if name.isdigit() or name in ("self", "thread-self"):
            continue
        try:
            mode = os.lstat(f"/proc/{name}").st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and not mode & stat.S_IROTH:
            found.add(name)
    return tuple(sorted(found))


# --as-pid-1: the program is its PID namespace's init, bubblewrap's direct child. With a reaper in between,
# bubblewrap could exit before it, and the orphaned reaper went to the caller when the caller is a container's
# PID 1 (or a subreaper), which would never collect it.
_NAMESPACES = (
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--die-with-parent",
    "--new-session",
    "--as-pid-1",
    "--cap-drop",
    "ALL",
)
_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": SCRATCH,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class SandboxCommand:
    """The argv to start, and the descriptors it must inherit (the seccomp filter)."""

    argv: list[str]
    pass_fds: tuple[int, ...]


_probed: dict[str, str | None] = {}
_roots: dict[str, tuple[str, ...]] = {}


async def probe(bwrap: str) -> str | None:
    """Why bubblewrap cannot make a sandbox here, or ``None`` when it can (checked once per process).

    A plain ``true`` in the same namespaces tells apart "not installed" from "installed but the kernel refuses
    user namespaces" (``kernel.unprivileged_userns_clone=0``, Ubuntu's AppArmor restriction, a container
    without ``CLONE_NEWUSER``).
    """
    if bwrap not in _probed:
        _probed[bwrap] = await _probe(bwrap)
    return _probed[bwrap]


async def _probe(bwrap: str) -> str | None:
    found = shutil.which(bwrap)
    if found is None:
        return (
            f"bubblewrap ({bwrap!r}) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap, "
            "Fedora: dnf install bubblewrap)"
        )
    true = shutil.which("true") or "/bin/true"
    argv = [found, *_NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", true]
    try:
        with anyio.fail_after(30):
            done = await anyio.run_process(argv, check=False)
    except (OSError, TimeoutError) as exc:
        return f"bubblewrap ({found}) could not be started: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        return (
            f"bubblewrap ({found}) cannot create the namespaces here ({said}); unprivileged user namespaces "
            "may be disabled (sysctl kernel.unprivileged_userns_clone, "
            "kernel.apparmor_restrict_unprivileged_userns, or the container's seccomp profile)"
        )
    return None


async def python_roots(python: str) -> tuple[str, ...]:
    """The folders an interpreter needs to start and import installed packages: its prefixes (a virtual
    environment and the Python it was made from) and the folders along its chain of symlinks."""
    if python not in _roots:
        _roots[python] = await _python_roots(python)
    return _roots[python]


async def _python_roots(python: str) -> tuple[str, ...]:
    if _same_file(python, sys.executable):
        prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    else:
        code = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
        code += "sys.base_exec_prefix]))"
        try:
            with anyio.fail_after(60):
                done = await anyio.run_process([python, "-I", "-c", code])
            prefixes = json.loads(done.stdout)
        except (OSError, TimeoutError, subprocess.CalledProcessError, ValueError) as exc:
            raise ConfigurationError(f"ProgramVerifier cannot run the interpreter {python!r}: {exc}") from exc
    return _roots_of(python, prefixes)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _roots_of(python: str, prefixes: Iterable[str]) -> tuple[str, ...]:
    prefixes = list(prefixes)
    roots = [os.path.realpath(p) for p in prefixes] + [os.path.abspath(p) for p in prefixes]
    hop, seen = os.path.abspath(python), set()
    while hop not in seen:
        seen.add(hop)
        roots.append(os.path.dirname(hop))
        if not os.path.islink(hop):
            break
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
    return _outermost(roots)


def _outermost(paths: Iterable[str]) -> tuple[str, ...]:
    """Distinct existing folders with the ones inside others (or inside ``/usr``, bound anyway) left out."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths if os.path.isdir(p)}, key=len):
        if path in ("/", "/usr") or any(path == k or path.startswith(k + "/") for k in ["/usr", *kept]):
            continue
        kept.append(path)
    return tuple(kept)


def bubblewrap_command(
    bwrap: str,
    command: Sequence[str],
    *,
    scratch_bytes: int,
    read_only: Sequence[str],
    tmp_bytes: int,
    seccomp_fd: int | None,
) -> SandboxCommand:
    """The bubblewrap argv that runs ``command`` (with ``/scratch`` as its working folder) in a new sandbox.

    Args:
        bwrap: the bubblewrap executable.
        command: what to run inside (its paths must lie in ``/usr`` or in ``read_only``).
        scratch_bytes: the size of ``/scratch``, a tmpfs of its own (nothing the program writes is on the host).
        read_only: host folders made visible, read-only, at the same path (the interpreter's prefixes).
        tmp_bytes: the size of the private ``/tmp``.
        seccomp_fd: a descriptor holding a compiled seccomp filter, or ``None``.
    """
    argv = [
        bwrap,
        *_NAMESPACES,
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    for name, value in _ENVIRONMENT.items():
        argv += ["--setenv", name, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for path in _SYSTEM_LINKS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    # /tmp first: a prefix that lives under the host's /tmp is then bound over the private one, not hidden.
    argv += ["--proc", "/proc"]
    for name in _PROC_HIDDEN_DIRS:
        if os.path.isdir(f"/proc/{name}"):
            argv += ["--size", "4096", "--tmpfs", f"/proc/{name}", "--remount-ro", f"/proc/{name}"]
    for name in _root_only_proc_files():
        if os.path.exists(f"/proc/{name}"):
            argv += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    # /dev read-only (no /dev/shm to fill: its tmpfs has no size limit); the device nodes stay usable.
    argv += ["--dev", "/dev", "--remount-ro", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for path in _outermost(read_only):
        argv += ["--ro-bind", path, path]
    argv += ["--size", str(scratch_bytes), "--tmpfs", SCRATCH, "--chdir", SCRATCH]
    argv += ["--remount-ro", "/"]  # the sandbox's own root, a tmpfs without a size limit otherwise
    fds: tuple[int, ...] = ()
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
        fds = (seccomp_fd,)
    return SandboxCommand(argv=[*argv, "--", *command], pass_fds=fds)
