"""A seccomp filter (classic BPF, loaded by bubblewrap) that stops a sandboxed program from starting processes.

Why a filter and not only the PID namespace: the namespace kills every process when the program ends, but while
it runs a fork bomb could still take the machine's process table, and as root ``RLIMIT_NPROC`` does not count.
The filter makes ``fork``, ``vfork`` and ``clone`` without ``CLONE_THREAD`` fail with ``EPERM`` (threads still
work; ``clone3``, whose flags a filter cannot read, fails with ``ENOSYS`` so that the C library falls back to
``clone``). It also refuses a few calls that only attack the kernel or other processes (``ptrace``, namespace
and mount calls, keyrings, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``), ``memfd_create`` and
``memfd_secret`` (anonymous files that no filesystem's size limit counts), and sockets of any family but
``AF_UNIX``, ``AF_INET`` and ``AF_INET6`` (``AF_VSOCK`` would reach the host's vsock ports, which no network
namespace separates). Anything else is allowed: the namespaces and the read-only view are the boundary, the
filter narrows what the kernel exposes.

Only x86-64 and AArch64 are known; elsewhere :func:`process_filter` returns ``None`` and the sandbox runs
without it (processes are then bounded by ``RLIMIT_NPROC`` and die with the PID namespace).
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = ["process_filter"]

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45  # BPF_JMP | BPF_{JEQ,JGE,JSET} | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
_NO_CALL = 0xFFFFFFFF  # above _X32_BIT, so already refused before any comparison with it

_AF_UNIX, _AF_INET, _AF_INET6 = 1, 2, 10

# machine -> (AUDIT_ARCH, clone, clone3, calls that make processes, calls refused outright, socket calls)
_TABLES: dict[str, tuple[int, int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "x86_64": (
        0xC000003E,
        56,
        435,
        (57, 58),  # fork, vfork
        # ptrace, unshare, setns, mount, umount2, pivot_root, keyctl, add_key, request_key, bpf,
        # perf_event_open, userfaultfd, io_uring_setup/enter/register, kexec_load, process_vm_readv/writev,
        # memfd_create, memfd_secret (memory no filesystem's size limit counts), open_tree, move_mount, fsopen,
        # fsconfig, fsmount, fspick, mount_setattr
        (
            101,
            272,
            308,
            165,
            166,
            155,
            250,
            248,
            249,
            321,
            298,
            323,
            425,
            426,
            427,
            246,
            310,
            311,
            319,
            447,
            428,
            429,
            430,
            431,
            432,
            433,
            442,
        ),
        (41, 53),  # socket, socketpair
    ),
    "aarch64": (
        0xC00000B7,
        220,
        435,
        (),
        (
            117,
            97,
            268,
            40,
            39,
            41,
            219,
            217,
            218,
            280,
            241,
            282,
            425,
            426,
            427,
            104,
            270,
            271,
            279,
            447,
            428,
            429,
            430,
            431,
            432,
            433,
            442,
        ),
        (198, 199),
    ),
}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def process_filter(*, allow_processes: bool = False, machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine (``struct sock_filter`` array), or ``None`` where unknown.

    With ``allow_processes`` only the calls refused outright are refused; starting processes is allowed.
    Sockets of any family but ``AF_UNIX``, ``AF_INET`` and ``AF_INET6`` (all confined to the sandbox's own
    network namespace) fail with ``EAFNOSUPPORT``: ``AF_VSOCK`` reaches the host's vsock ports, which no
    network namespace separates, and the rest (netlink, packet, bluetooth, ...) only widen the kernel's surface.
    """
    table = _TABLES.get(machine or platform.machine())
    if table is None:
        return None
    arch, clone, clone3, forks, refused, sockets = table
    if allow_processes:
        forks, clone, clone3 = (), _NO_CALL, _NO_CALL  # the clone checks then never match
    eperm, enosys = _ERRNO | errno.EPERM, _ERRNO | errno.ENOSYS
    # Each entry: (code, k, jump-if-true label, jump-if-false label); a label is resolved to an offset below.
    program: list[tuple[int, int, str | None, str | None]] = [
        (_LD_ABS, _ARCH, None, None),
        (_JEQ, arch, "known", None),
        (_RET, _KILL_PROCESS, None, None),  # a foreign ABI (e.g. 32-bit calls on x86-64): never legitimate here
    ]
    labels: dict[str, int] = {"known": len(program)}
    program += [
        (_LD_ABS, _NR, None, None),
        (_JGE, _X32_BIT, "eperm", None),
        (_JEQ, clone, "clone", None),
        (_JEQ, clone3, "enosys", None),
        *[(_JEQ, number, "socket", None) for number in sockets],
        *[(_JEQ, number, "eperm", None) for number in (*forks, *refused)],
        (_RET, _ALLOW, None, None),
    ]
    # Every jump goes forward: the argument checks first, then the shared returns.
    for name, instructions in (
        ("clone", [(_LD_ABS, _ARG0_LOW, None, None), (_JSET, _CLONE_THREAD, "allow", "eperm")]),
        (
            "socket",
            [
                (_LD_ABS, _ARG0_LOW, None, None),
                (_JEQ, _AF_UNIX, "allow", None),
                (_JEQ, _AF_INET, "allow", None),
                (_JEQ, _AF_INET6, "allow", None),
                (_RET, _ERRNO | errno.EAFNOSUPPORT, None, None),
            ],
        ),
        ("allow", [(_RET, _ALLOW, None, None)]),
        ("eperm", [(_RET, eperm, None, None)]),
        ("enosys", [(_RET, enosys, None, None)]),
    ):
        labels[name] = len(program)
        program += instructions

    def offset(label: str | None, at: int) -> int:
        if label is None:
            return 0
        jump = labels[label] - at - 1
        assert 0 <= jump <= 255, "a seccomp jump must go forward by at most 255 instructions"
        return jump

    return b"".join(_op(code, k, offset(jt, at), offset(jf, at)) for at, (code, k, jt, jf) in enumerate(program))
