"""Remove a folder a program wrote into, whatever it left there: never follow a link, never touch anything
outside the folder, and do not fail on depth or modes.

``shutil.rmtree`` recurses (a chain of 100,000 nested folders raises ``RecursionError`` and leaves everything),
and a retry that ``chmod``\\ s by path follows a planted symlink to a host file. Here the walk keeps one open
folder at a time (climbing back through ``..``), opens every folder with ``O_NOFOLLOW``, and makes a folder
writable only through a descriptor of that very folder. It does blocking I/O: callers run it in a worker
thread (``anyio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["remove_tree"]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_folder(name: str, parent: int) -> int:
    """Open a folder below ``parent``; a folder without permissions (mode 000) is made ``0700`` first,
    through an ``O_PATH`` descriptor of that folder itself (never a path that could lead elsewhere)."""
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent)
    except PermissionError:
        handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.chmod(f"/proc/self/fd/{handle}", 0o700)
        finally:
            os.close(handle)
        return os.open(name, _DIRECTORY, dir_fd=parent)


def _writable(folder: int) -> None:
    mode = os.fstat(folder).st_mode
    if mode & 0o700 != 0o700:
        os.fchmod(folder, 0o700)


def _scan(folder: int) -> list[str]:
    """Remove the files and empty folders in ``folder``; return the folders left (not empty)."""
    _writable(folder)
    left = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=folder)
                continue
            try:
                os.rmdir(entry.name, dir_fd=folder)  # empty: no need to go in
            except OSError:
                left.append(entry.name)
    return left


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything in it. Returns quietly when ``path`` is gone already.

    Raises:
        OSError: something could not be removed (reported by the caller; the rest is removed).
    """
    try:
        current = os.open(path, _DIRECTORY)
    except FileNotFoundError:
        return
    # One entry per level from ``path`` down to ``current``: (the name of the folder, its folders still to do).
    levels: list[tuple[str, list[str]]] = [("", _scan_or_close(current))]
    try:
        while True:
            pending = levels[-1][1]
            if pending:
                name = pending.pop()
                below = _open_folder(name, current)
                os.close(current)
                current = below
                levels.append((name, _scan(current)))
                continue
            if len(levels) == 1:
                break
            parent = os.open("..", _DIRECTORY, dir_fd=current)
            os.close(current)
            current = parent
            name, _ = levels.pop()
            try:
                os.rmdir(name, dir_fd=current)
            except OSError:  # something appeared meanwhile: look again
                levels[-1][1].append(name)
    finally:
        os.close(current)
    os.rmdir(path)


def _scan_or_close(folder: int) -> list[str]:
    try:
        return _scan(folder)
    except BaseException:
        os.close(folder)
        raise
