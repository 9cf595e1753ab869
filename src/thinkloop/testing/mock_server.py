"""A mock OpenAI-compatible chat server with a known answer distribution, for tests and benchmarks.

It answers ``POST /v1/chat/completions`` (honouring ``n``) and ``GET /v1/models`` like a server with
unlimited parallel slots: every request waits ``latency`` seconds concurrently with all others, so a client's
wall time shows how well it keeps the server busy, not how fast the mock computes. It also serves
``GET /stats`` (requests, choices, requests by ``n``, the largest number of requests in flight) and
``POST /reset`` so a benchmark can read and clear its counters between runs.

What it answers, and with what known distribution, is :mod:`thinkloop.testing.mock_model`'s (re-exported here).

The HTTP layer is a small HTTP/1.1 server on anyio's TCP listener (keep-alive, ``Content-Length`` bodies),
so the mock needs no web framework. It binds to 127.0.0.1 only. Run it in its own process for benchmarks
(``python -m thinkloop.testing.mock_server --port 0 --latency 0.2``, or :class:`MockServerProcess`) so it
does not share the client's CPU; tests can run it in-process with :func:`serve_mock`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Any, TypeVar

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from thinkloop.testing.mock_model import (
    MockConfig,
    MockModel,
    MockStats,
    question_key,
    right_answer,
    vote_right_probability,
)

__all__ = [
    "LOOPBACK",
    "MockConfig",
    "MockModel",
    "MockServer",
    "MockServerProcess",
    "MockStats",
    "question_key",
    "right_answer",
    "serve_mock",
    "vote_right_probability",
]

LOOPBACK = "127.0.0.1"
_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _response(status: int, payload: dict[str, Any], *, close: bool = False) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _error(status: int, message: str, *, close: bool = False) -> bytes:
    return _response(
        status, {"error": {"message": message, "type": "invalid_request_error", "code": None}}, close=close
    )


class MockServer:
    """The HTTP side: parses HTTP/1.1 requests on keep-alive connections and routes them to a :class:`MockModel`."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.model = MockModel(config)
        self.port: int | None = None

    @property
    def config(self) -> MockConfig:
        return self.model.config

    @property
    def stats(self) -> MockStats:
        return self.model.stats

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client (``.../v1``)."""
        if self.port is None:
            raise RuntimeError("the mock server is not listening yet")
        return f"http://{LOOPBACK}:{self.port}/v1"

    def reset(self) -> None:
        self.model.reset()

    def admits(self, path: str, headers: dict[str, str]) -> bool:
        """Whether a request with these (lower-cased) headers may be served: any (a variant may want a key)."""
        return True

    async def serve(self, port: int = 0, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 until cancelled; reports the bound port through ``task_status``."""
        listener = await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=port)
        async with listener:
            self.port = listener.extra(SocketAttribute.local_port)
            task_status.started(self.port)
            await listener.serve(self._connection)

    async def _connection(self, stream: ByteStream) -> None:
        self.stats.connections += 1
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while True:
                    try:
                        head = await reader.receive_until(b"\r\n\r\n", _MAX_HEADER_BYTES)
                    except anyio.DelimiterNotFound:
                        await stream.send(_error(431, "request head too large", close=True))
                        return
                    keep_alive = await self._request(head, reader, stream)
                    if not keep_alive:
                        return
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    async def _request(self, head: bytes, reader: BufferedByteReceiveStream, stream: ByteStream) -> bool:
        """Answer one request; returns whether the connection stays open."""
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await stream.send(_error(400, "malformed request line", close=True))
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await stream.send(_error(411, "send a Content-Length body", close=True))
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            await stream.send(_error(400, "bad Content-Length", close=True))
            return False
        if length > _MAX_BODY_BYTES:
            await stream.send(_error(413, f"body of {length} bytes exceeds {_MAX_BODY_BYTES}", close=True))
            return False
        raw = await reader.receive_exactly(length) if length else b""
        path = target.split("?", 1)[0].rstrip("/")
        if not self.admits(path, headers):
            await stream.send(_error(401, "Incorrect API key provided", close=not keep_alive))
            return keep_alive
        if path == "/v1/chat/completions":
            if method != "POST":
                await stream.send(_error(405, "use POST", close=not keep_alive))
                return keep_alive
            await self._chat(raw, stream, keep_alive)
        elif path == "/v1/models" and method == "GET":
            await stream.send(_response(200, self.model.models(), close=not keep_alive))
        elif path == "/stats" and method == "GET":
            await stream.send(_response(200, self.stats.as_json(), close=not keep_alive))
        elif path == "/reset" and method == "POST":
            self.reset()
            await stream.send(_response(200, {"reset": True}, close=not keep_alive))
        else:
            await stream.send(_error(404, f"no route {method} {path}", close=not keep_alive))
        return keep_alive

    async def _chat(self, raw: bytes, stream: ByteStream, keep_alive: bool) -> None:
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                # Draw the answers when the request arrives, so their order follows arrival, not latency.
                payload = self.model.complete(body)
            except ValueError as exc:  # JSONDecodeError is a ValueError
                stats.errors += 1
                await stream.send(_error(400, str(exc), close=not keep_alive))
                return
            await anyio.sleep(self.config.latency)
            await stream.send(_response(200, payload, close=not keep_alive))
        finally:
            self.stats.in_flight -= 1


ServerT = TypeVar("ServerT", bound="MockServer")


@asynccontextmanager
async def serving(server: ServerT, port: int = 0) -> AsyncIterator[ServerT]:
    """Run ``server`` (a :class:`MockServer` or one of its kinds) in this event loop for the block."""
    async with anyio.create_task_group() as group:
        await group.start(server.serve, port)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()


@asynccontextmanager
async def serve_mock(config: MockConfig | None = None, *, port: int = 0) -> AsyncIterator[MockServer]:
    """Run a mock server in this event loop for the duration of the block (tests)."""
    async with serving(MockServer(config), port) as server:
        yield server


class MockServerProcess:
    """A mock server in a child process, so it does not share the measured client's CPU (benchmarks).

    A synchronous context manager: use it around ``anyio.run`` calls, and read :meth:`stats` between them.
    """

    def __init__(self, config: MockConfig | None = None, *, startup_timeout: float = 30.0) -> None:
        self.config = config or MockConfig()
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None

    module = "thinkloop.testing.mock_server"
    """The module run as the server (a variant beside it may add its own flags through :meth:`command`)."""

    def command(self) -> list[str]:
        config = self.config
        command = [
            sys.executable,
            "-m",
            self.module,
            "--port",
            "0",
            "--latency",
            repr(config.latency),
            "--p-right",
            repr(config.p_right),
            "--distractors",
            str(config.distractors),
            "--filler-words",
            str(config.filler_words),
            "--model",
            config.model,
            "--seed",
            str(config.seed),
        ]
        if config.max_choices is not None:
            command += ["--max-choices", str(config.max_choices)]
        return command

    def __enter__(self) -> MockServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, text=True, env=env)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # "listening on URL", or "" if it died
        if not line.startswith("listening on "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the mock server did not start: {line!r}")
        self.base_url = line.split()[-1]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        """The server's counters (see :class:`MockStats`)."""
        with urllib.request.urlopen(f"{self.root}/stats", timeout=10) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.root}/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def command_line(prog: str) -> argparse.ArgumentParser:
    """The mock's flags, for this module's ``main`` and for mock variants that add their own."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--p-right", type=float, default=0.6)
    parser.add_argument("--distractors", type=int, default=50)
    parser.add_argument("--max-choices", type=int, default=None, help="1 ignores n, like llama.cpp")
    parser.add_argument("--filler-words", type=int, default=24)
    parser.add_argument("--model", default="mock")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def config_from(args: argparse.Namespace) -> MockConfig:
    return MockConfig(
        latency=args.latency,
        p_right=args.p_right,
        distractors=args.distractors,
        max_choices=args.max_choices,
        filler_words=args.filler_words,
        model=args.model,
        seed=args.seed,
    )


def serve_until_interrupted(server: MockServer, port: int) -> None:
    """Serve on ``port`` (0: a free one), print the URL once listening, stop on Ctrl-C."""

    async def run() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.serve, port)
            sys.stdout.write(f"listening on {server.base_url}\n")
            sys.stdout.flush()

    with suppress(KeyboardInterrupt):
        anyio.run(run)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m thinkloop.testing.mock_server``: serve until interrupted; prints its URL first."""
    args = command_line("python -m thinkloop.testing.mock_server").parse_args(argv)
    serve_until_interrupted(MockServer(config_from(args)), args.port)


if __name__ == "__main__":
    main()
