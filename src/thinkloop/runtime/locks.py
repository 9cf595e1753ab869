"""One writer per file: an OS lock (``fcntl.flock``) held for as long as a results store or a trace is open
for appending, and writes that are checked.

Why: two ``bench run`` processes on one ``--out`` both sent and recorded most problems, and a process that
opened a trace or results file to append "repaired" a last line another process was still writing, cutting
it. With the lock, the second writer fails at once with one line naming the holder (its pid and command,
found in ``/proc/locks``: no note file to write or leave behind), and only the holder ever repairs a torn
last line. Within one process, writers of the same file share the lock (their writes are whole lines
from one event loop, so they cannot tear each other's).

:func:`write_all` writes every byte or raises: a raw file's ``write`` may write fewer bytes than asked (a
full disk), and a trace whose last event was silently cut would read as a run that never finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO

from thinkloop.exceptions import StoreLocked

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no lock, as before
    fcntl = None

__all__ = ["WriterLock", "write_all"]


@dataclass
class _Held:
    fd: int
    count: int


_HELD: dict[tuple[int, int], _Held] = {}
"""Locks this process holds, by (device, inode): a second writer in the same process shares the first's."""


def _holder(stat: os.stat_result) -> str:
    """The process holding a lock on the file ``stat`` describes, from ``/proc/locks`` (Linux), by pid and
    command; "another process" where that cannot be read."""
    wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and "FLOCK" in fields and wanted in fields:
            pid = fields[fields.index(wanted) - 1]
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except (OSError, UnicodeDecodeError):
                command = ""
            return f"process {pid}" + (f" ({command[:160]})" if command else "")
    return "another process"


class WriterLock:
    """The exclusive right to append to ``path``, held through ``file`` (open on it) until :meth:`release`.

    Raises:
        StoreLocked: another process holds it; the message names that process and the file.
    """

    def __init__(self, file: IO[bytes], path: str | Path, *, what: str) -> None:
        self.path = Path(path)
        self._key: tuple[int, int] | None = None
        if fcntl is None:
            return
        stat = os.fstat(file.fileno())
        key = (stat.st_dev, stat.st_ino)
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            self._key = key
            return
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLocked(
                f"{self.path} is already being written by {_holder(stat)}: one writer per {what}. Wait for it "
                f"to finish, or give this run another file"
            ) from None
        # A duplicate of the descriptor keeps the lock for as long as any writer of this process holds it.
        _HELD[key] = _Held(fd=os.dup(file.fileno()), count=1)
        self._key = key

    def release(self) -> None:
        """Give the lock back (when this was the process's last writer of the file)."""
        key, self._key = self._key, None
        if key is None:
            return
        held = _HELD[key]
        held.count -= 1
        if held.count:
            return
        del _HELD[key]
        os.close(held.fd)  # closing the last descriptor of the locked file description unlocks it


def write_all(file: IO[bytes], data: bytes, path: str | Path) -> None:
    """Write all of ``data`` to an unbuffered file, or raise ``OSError`` naming the file and how much was
    written: a short write is followed by one for the rest (as ``write`` allows); one that writes nothing, or
    fails, is a failure, never ignored."""
    view = memoryview(data)
    written = 0
    while written < len(data):
        try:
            count = file.write(view[written:]) or 0  # None: would block, never for a regular file
        except OSError as exc:
            raise OSError(
                exc.errno, f"could not write to {path}: {exc.strerror} (wrote {written} of {len(data)} bytes)"
            ) from None
        if count == 0:
            raise OSError(f"could not write to {path}: wrote {written} of {len(data)} bytes (is the disk full?)")
        written += count
