"""The first code that runs in the sandboxed interpreter: limits, a tripwire, then the model's program.

Run as ``python -I -B -c <this file's text> <config JSON>`` with the program on stdin; it is never imported
by thinkloop (it uses only the standard library, because the sandbox may not see thinkloop). It

1. sets the resource limits (``RLIMIT_AS``, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
   ``RLIMIT_NPROC``, no core dumps) with soft = hard, so the program cannot raise them;
2. installs an audit hook that ends the program with a clear message when it writes outside the writable
   folders, opens a socket, starts a process, sends a signal or calls native code through ``ctypes``.

The hook is an early, friendly explanation, *not* the guard: Python code can switch it off (its frames and
closure cells are reachable). Under bubblewrap the kernel is the guard; the hook only turns the common
mistakes into a one-line reason instead of a confusing ``OSError``.
"""

from __future__ import annotations

import builtins
import json
import posix
import resource
import signal
import stat
import sys

TYPE_CHECKING = False  # type checkers read the import below; the sandboxed interpreter does not load typing
if TYPE_CHECKING:
    from typing import Any

_PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.startfile",
        "pty.spawn",
    }
)
_DENIED_EVENTS = frozenset(
    {
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.call_function",
        "ctypes.cdata",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "os.chroot",
        "sys.remote_exec",
    }
)
# event -> indexes of its path arguments (written or created), and of its dir_fd argument
_PATH_EVENTS = {
    "os.remove": ((0,), 1),
    "os.rmdir": ((0,), 1),
    "os.mkdir": ((0,), 2),
    "os.rename": ((0, 1), 2),
    "os.link": ((0, 1), 2),
    "os.symlink": ((1,), 2),
    "os.chmod": ((0,), 2),
    "os.chown": ((0,), 3),
    "os.chflags": ((0,), None),
    "os.lchflags": ((0,), None),
    "os.utime": ((0,), 3),
    "os.truncate": ((0,), None),
    "os.setxattr": ((0,), None),
    "os.removexattr": ((0,), None),
    "os.mkfifo": ((0,), 2),
    "os.mknod": ((0,), 3),
    "shutil.rmtree": ((0,), 1),
    "shutil.chown": ((0,), None),
    "shutil.copyfile": ((1,), None),
    "shutil.copytree": ((1,), None),
    "shutil.move": ((1,), None),
}
_WRITABLE_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
_AF_UNIX = 1


def _install(config: dict[str, Any]) -> None:
    """Install the audit hook. It keeps its own references to the C functions it uses, so a program that
    monkeypatches ``os`` does not blind it by accident."""
    writable = tuple(config["writable"])
    denied_exit, marker = config["denied_exit"], config["marker"]
    denied_events = _DENIED_EVENTS if config["allow_processes"] else _DENIED_EVENTS | _PROCESS_EVENTS
    path_events = _PATH_EVENTS
    write, exit_now, getcwd = posix.write, posix._exit, posix.getcwd
    readlink, lstat, stat_ = posix.readlink, posix.lstat, posix.stat
    fspath, is_link, is_dir = posix.fspath, stat.S_ISLNK, stat.S_ISDIR
    isinstance_, str_, bytes_, int_ = builtins.isinstance, builtins.str, builtins.bytes, builtins.int
    repr_, any_ = builtins.repr, builtins.any
    encoding = sys.getfilesystemencoding()
    write_flags = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND

    def resolve(path: str, dir_fd: int | None) -> str:
        if not path.startswith("/"):
            base = readlink(f"/proc/self/fd/{dir_fd}") if dir_fd is not None and dir_fd >= 0 else getcwd()
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
                parts.extend(p for p in reversed(target.split("/")) if p and p != ".")
                continue
            resolved = candidate
        return resolved or "/"

    def as_text(path: Any) -> str | None:
        if isinstance_(path, int_):
            return None
        path = fspath(path)
        return path.decode(encoding, "surrogateescape") if isinstance_(path, bytes_) else path

    def inside(path: object, dir_fd: int | None = None) -> bool:
        text = as_text(path)
        if text is None:
            return True  # an open file descriptor: opening it was checked
        if text in _WRITABLE_DEVICES:
            return True
        real = resolve(text, dir_fd)
        return any_(real == root or real.startswith(root + "/") for root in writable)

    def deny(event: str, detail: str) -> None:
        try:
            write(2, f"\n{marker} denied {event}: {detail}\n".encode("utf-8", "replace"))
        finally:
            exit_now(denied_exit)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance_(path, int_):
                return
            writing = bool((flags or 0) & write_flags)
            writing = writing or (isinstance_(mode, str_) and any_(c in mode for c in "wax+"))
            if inside(path):
                return
            if writing:
                deny("open", f"writing {repr_(path)}")
            try:
                text = as_text(path)
                directory = text is not None and is_dir(stat_(text).st_mode)
            except OSError:
                directory = False
            if directory:
                deny("open", f"the directory {repr_(path)} (outside the writable folders)")
        elif event in path_events:
            indexes, dir_index = path_events[event]
            dir_fd = args[dir_index] if dir_index is not None and dir_index < len(args) else None
            for index in indexes:
                if index < len(args) and args[index] is not None and not inside(args[index], dir_fd):
                    deny(event, repr_(args[index]))
        elif event == "socket.__new__" and len(args) > 1 and args[1] == _AF_UNIX:
            return  # a local socket pair (asyncio's self-pipe); connecting or binding one is still denied
        elif event in denied_events or event.startswith("socket."):
            deny(event, repr_(args)[:200])
        elif event == "ctypes.dlopen" and args and args[0] is not None:
            deny(event, repr_(args[0]))

    sys.addaudithook(hook)


def _main() -> None:
    config = json.loads(sys.argv[1])
    # First of all, say so: the caller tells a sandbox that failed to start from a program that failed.
    posix.write(2, f"{config['marker']} started\n".encode())
    for name, value in config["limits"].items():
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU at the soft limit, SIGKILL a second later
        resource.setrlimit(getattr(resource, name), (value, hard))
    # The program is its PID namespace's init, which the kernel spares signals it has no handler for: SIGXCPU
    # at the soft CPU limit would be dropped (the hard limit's SIGKILL still comes a second later).
    cpu_exit = config["cpu_exit"]
    signal.signal(signal.SIGXCPU, lambda number, frame: posix._exit(cpu_exit))
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
        posix.write(2, f"\n{config['marker']} memory limit exceeded\n".encode())
        posix._exit(config["memory_exit"])
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        import traceback

        # The program's own frames only: the bootstrap is not the model's concern.
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        sys.exit(1)


if __name__ == "__main__":
    _main()
