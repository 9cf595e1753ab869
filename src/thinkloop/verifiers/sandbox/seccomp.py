"""A seccomp filter (classic BPF, loaded by bubblewrap) that stops a sandboxed program from starting processes.

Why a filter and not only the PID namespace: the namespace kills every process when the program ends, but while
it runs a fork bomb could still take the machine's process table, and as root ``RLIMIT_NPROC`` does not count.
The filter makes ``fork``, ``vfork`` and ``clone`` without ``CLONE_THREAD`` fail with ``EPERM`` (threads still
work; ``clone3``, whose flags a filter cannot read, fails with ``ENOSYS`` so that the C library falls back to
``clone``). It also refuses a few calls that only attack the kernel or other processes (``ptrace``, namespace
and mount calls, keyrings, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``). Anything else is
allowed: the namespaces and the read-only view are the boundary, the filter narrows what the kernel exposes.

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

# machine -> (AUDIT_ARCH, clone, clone3, calls that make processes, calls refused outright)
_TABLES: dict[str, tuple[int, int, int, tuple[int, ...], tuple[int, ...]]] = {
    "x86_64": (
        0xC000003E, 56, 435, (57, 58),  # fork, vfork
        # ptrace, unshare, setns, mount, umount2, pivot_root, keyctl, add_key, request_key, bpf,
        # perf_event_open, userfaultfd, io_uring_setup/enter/register, kexec_load, process_vm_readv/writev
        (101, 272, 308, 165, 166, 155, 250, 248, 249, 321, 298, 323, 425, 426, 427, 246, 310, 311),
    ),
    "aarch64": (
        0xC00000B7, 220, 435, (),
        (117, 97, 268, 40, 39, 41, 219, 217, 218, 280, 241, 282, 425, 426, 427, 104, 270, 271),
    ),
}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def process_filter(*, allow_processes: bool = False, machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine (``struct sock_filter`` array), or ``None`` where unknown.

    With ``allow_processes`` only the calls refused outright are refused; starting processes is allowed.
    """
    table = _TABLES.get(machine or platform.machine())
    if table is None:
        return None
    arch, clone, clone3, forks, refused = table
    if allow_processes:
        forks, clone, clone3 = (), _NO_CALL, _NO_CALL  # the clone checks then never match
    denied = (*forks, *refused)
    eperm, enosys = _ERRNO | errno.EPERM, _ERRNO | errno.ENOSYS
    # Layout: [arch check][nr][x32][clone][clone3][denied...][allow][eperm][enosys][clone: arg0, jset, eperm]
    head = 4 + 3 + len(denied)  # instructions before ALLOW
    eperm_at, enosys_at, clone_at = head + 1, head + 2, head + 3  # ALLOW is at head
    program = [
        _op(_LD_ABS, _ARCH),
        _op(_JEQ, arch, jt=1),
        _op(_RET, _KILL_PROCESS),  # a foreign ABI (e.g. 32-bit calls on x86-64): never legitimate here
        _op(_LD_ABS, _NR),
    ]
    position = len(program)

    def jump_to(target: int) -> int:
        return target - position - 1

    program.append(_op(_JGE, _X32_BIT, jt=jump_to(eperm_at)))
    position += 1
    program.append(_op(_JEQ, clone, jt=jump_to(clone_at)))
    position += 1
    program.append(_op(_JEQ, clone3, jt=jump_to(enosys_at)))
    position += 1
    for number in denied:
        program.append(_op(_JEQ, number, jt=jump_to(eperm_at)))
        position += 1
    program += [
        _op(_RET, _ALLOW),
        _op(_RET, eperm),
        _op(_RET, enosys),
        _op(_LD_ABS, _ARG0_LOW),
        _op(_JSET, _CLONE_THREAD, jt=0, jf=1),
        _op(_RET, _ALLOW),
        _op(_RET, eperm),
    ]
    assert len(program) == clone_at + 4, "the jump targets above assume this layout"
    return b"".join(program)
