"""Helpers for the ``thinkloop serve`` tests: the server as a subprocess, and an upstream that rate-limits.

The server runs exactly as a user starts it (``python -m thinkloop serve --port 0 ...``) on 127.0.0.1; the
test reads the URL it prints. Its stderr goes to a file, so a test can read the server's log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio

from thinkloop.testing.mock_server import MockServer

READY = "thinkloop serve: listening on "


class ServeProcess:
    """``thinkloop serve`` in a child process; a context manager that stops it with SIGTERM."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env
        self.url = ""
        self.returncode: int | None = None
        self._log = tempfile.NamedTemporaryFile("w+", prefix="thinkloop-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServeProcess:
        command = [sys.executable, "-m", "thinkloop", "serve", "--port", "0", *self.args]
        env = dict(os.environ if self.env is None else self.env, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(READY):
            self.__exit__(None, None, None)
            raise RuntimeError(f"thinkloop serve did not start: {line!r}\n{self.log()}")
        self.url = line[len(READY):].strip()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        self.returncode = self.stop(process)
        self._log.close()

    @staticmethod
    def stop(process: subprocess.Popen[str]) -> int:
        process.terminate()
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return code

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return Path(self._log.name).read_text()

    def status_kb(self, field: str) -> int:
        """A memory field of the server process from /proc (VmRSS, VmHWM), in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


class RateLimitedUpstream(MockServer):
    """A mock upstream that answers every chat request with 429 and ``Retry-After: 0``."""

    async def _chat(self, raw: bytes, stream: Any, keep_alive: bool) -> None:
        self.stats.requests += 1
        body = b'{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}'
        head = (f"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\n"
                f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n")
        await stream.send(head.encode() + body)


def rate_limited_main() -> None:
    """Serve :class:`RateLimitedUpstream`, printing ``listening on URL`` like the mock server."""
    server = RateLimitedUpstream()

    async def run() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.serve, 0)
            sys.stdout.write(f"listening on {server.base_url}\n")
            sys.stdout.flush()

    anyio.run(run)


class RateLimitedUpstreamProcess:
    """:class:`RateLimitedUpstream` in a child process."""

    def __enter__(self) -> RateLimitedUpstreamProcess:
        here = str(Path(__file__).parent)
        code = f"import sys; sys.path.insert(0, {here!r}); import serve_support; serve_support.rate_limited_main()"
        self.process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            ServeProcess.stop(self.process)
            raise RuntimeError(f"the rate-limited upstream did not start: {line!r}")
        self.base_url = line.split()[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        ServeProcess.stop(self.process)
