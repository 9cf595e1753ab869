"""A mock OpenAI-compatible chat server with a known answer distribution, for tests and benchmarks.

It answers ``POST /v1/chat/completions`` (honouring ``n``) and ``GET /v1/models`` like a server with
unlimited parallel slots: every request waits ``latency`` seconds concurrently with all others, so a client's
wall time shows how well it keeps the server busy, not how fast the mock computes. It also serves
``GET /stats`` (requests, choices, requests by ``n``, the largest number of requests in flight) and
``POST /reset`` so a benchmark can read and clear its counters between runs.

The answers are arithmetic: the mock looks for ``A + B`` in the last user message (anything else gets a right
answer derived from a hash of the message). Each choice ends ``The answer is X.``; X is right with probability
``p_right`` and otherwise ``right ± d`` with ``d`` drawn uniformly from ``1..distractors/2`` (so wrong answers
rarely agree with each other). Which answer a choice gets depends only on the question and the choice's
position among all choices served for that question (a per-question counter), so one request with ``n=8`` and
eight requests with ``n=1`` draw exactly the same eight answers, in any arrival order, and runs reproduce.

The HTTP layer is a small HTTP/1.1 server on anyio's TCP listener (keep-alive, ``Content-Length`` bodies),
so the mock needs no web framework. It binds to 127.0.0.1 only. Run it in its own process for benchmarks
(``python -m thinkloop.testing.mock_server --port 0 --latency 0.2``, or :class:`MockServerProcess`) so it
does not share the client's CPU; tests can run it in-process with :func:`serve_mock`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from math import comb, factorial
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

LOOPBACK = "127.0.0.1"
_SUM = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)")
_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024
_FILLER_TEXT = (
    "Let me work through this carefully, adding the numbers column by column and carrying where needed "
    "before I check the total once more."
)
_FILLER = tuple(_FILLER_TEXT.split())
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
            413: "Content Too Large", 431: "Request Header Fields Too Large"}


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """How the mock answers.

    Args:
        latency: seconds every chat request waits before its answer (all requests overlap).
        p_right: probability that a choice carries the right answer.
        distractors: how many different wrong answers there are (``right ± 1..distractors/2``).
        max_choices: the most choices one request returns; ``1`` imitates llama.cpp's server, which ignores
            ``n`` (``None``: honour ``n`` fully).
        filler_words: words of "reasoning" before the final sentence, so replies have a realistic size.
        model: the model name reported in responses and ``/v1/models``.
        seed: changes every answer; the same seed reproduces a run.
    """

    latency: float = 0.0
    p_right: float = 0.6
    distractors: int = 50
    max_choices: int | None = None
    filler_words: int = 24
    model: str = "mock"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, got {self.latency}")
        if not 0.0 <= self.p_right <= 1.0:
            raise ValueError(f"p_right must be in [0, 1], got {self.p_right}")
        if self.distractors < 2 or self.distractors % 2:
            raise ValueError(f"distractors must be even and >= 2, got {self.distractors}")
        if self.max_choices is not None and self.max_choices < 1:
            raise ValueError(f"max_choices must be >= 1 or None, got {self.max_choices}")


@dataclass
class MockStats:
    """Counters since the last reset."""

    requests: int = 0
    """Chat completion requests answered (errors excluded)."""
    choices: int = 0
    requests_by_n: dict[int, int] = field(default_factory=dict)
    """Requests by the ``n`` they asked for (1 when absent)."""
    in_flight: int = 0
    max_in_flight: int = 0
    """The most chat requests between "request read" and "response written" at one time."""
    errors: int = 0
    connections: int = 0
    """TCP connections accepted (a keep-alive client opens few)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requests_by_n"] = {str(k): v for k, v in sorted(self.requests_by_n.items())}
        return data


def question_key(text: str) -> str:
    """What identifies a question inside a prompt: its last ``A + B``, else the whole text.

    Strategies wrap a question in their own templates; keying on the sum keeps the answers the same for
    every client that asks the same sum.
    """
    matches = _SUM.findall(text)
    if matches:
        a, b = matches[-1]
        return f"{int(a)}+{int(b)}"
    return text.strip()


def right_answer(text: str) -> int:
    """The answer the mock treats as right for a prompt (``A + B`` when present)."""
    matches = _SUM.findall(text)
    if matches:
        a, b = matches[-1]
        return int(a) + int(b)
    return _hash(text.strip(), "answer") % 1000


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def vote_right_probability(n: int, *, p_right: float = 0.6, distractors: int = 50) -> float:
    """The chance that a plurality vote over ``n`` of the mock's answers picks the right one, ties split evenly.

    Exact: wrong answers spread uniformly over ``distractors`` values, so for each count ``r`` of right answers
    it counts the ways the ``n - r`` wrong ones stay below ``r`` in every value, or tie at ``r`` in ``t`` of them.
    """
    q = (1.0 - p_right) / distractors
    total = 0.0
    for r in range(1, n + 1):
        k = n - r
        p_r = comb(n, r) * p_right**r * q**k  # times the number of ways to place the k wrong answers
        # Exponential generating function of one value's count: sum_{j < r} x^j / j!
        below = [1.0 / factorial(j) if j < r else 0.0 for j in range(k + 1)]
        for t in range(0, min(distractors, k // r if r else 0) + 1):
            poly = [1.0] + [0.0] * k
            for _ in range(distractors - t):
                poly = _poly_mul(poly, below, k)
            tied = [0.0] * (k + 1)
            if r * t <= k:
                tied[r * t] = 1.0 / factorial(r) ** t
            poly = _poly_mul(poly, tied, k)
            ways = comb(distractors, t) * poly[k] * factorial(k)
            total += p_r * ways / (t + 1)
    return total


def _poly_mul(a: Sequence[float], b: Sequence[float], degree: int) -> list[float]:
    out = [0.0] * (degree + 1)
    for i, x in enumerate(a):
        if x:
            for j in range(degree + 1 - i):
                out[i + j] += x * b[j]
    return out


class MockModel:
    """The answer logic, apart from HTTP, so tests can check the distribution directly."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.stats = MockStats()
        self._served: dict[str, int] = {}
        self._ids = 0
        words = self.config.filler_words
        self._filler = " ".join((_FILLER * (words // len(_FILLER) + 1))[:words])

    def reset(self) -> None:
        """Clear the counters and the per-question positions (the next run draws the same answers again)."""
        in_flight = self.stats.in_flight
        self.stats = MockStats(in_flight=in_flight, max_in_flight=in_flight)
        self._served.clear()

    def answer(self, key: str, right: int, position: int) -> int:
        """The answer of the ``position``-th choice served for a question."""
        config = self.config
        h = _hash(config.seed, key, position)
        if (h & 0xFFFFFFFF) / 2**32 < config.p_right:
            return right
        half = config.distractors // 2
        offset = (h >> 32) % config.distractors
        return right + (offset + 1 if offset < half else -(offset - half + 1))

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion response for a request body; raises ``ValueError`` on a bad request."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        if body.get("stream"):
            raise ValueError("the mock server does not stream")
        n = body.get("n")
        n = 1 if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"'n' must be a positive integer, got {n!r}")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        prompt = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                prompt = str(message.get("content") or "")
                break
        key, right = question_key(prompt), right_answer(prompt)
        count = n if self.config.max_choices is None else min(n, self.config.max_choices)
        start = self._served.get(key, 0)
        self._served[key] = start + count
        choices = []
        completion_tokens = 0
        for index in range(count):
            value = self.answer(key, right, start + index)
            words = f"{self._filler} The answer is {value}.".split()
            finish = "stop"
            if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
                words, finish = words[:max_tokens], "length"
            completion_tokens += len(words)
            choice: dict[str, Any] = {
                "index": index,
                "message": {"role": "assistant", "content": " ".join(words)},
                "finish_reason": finish,
                "logprobs": None,
            }
            if body.get("logprobs"):
                logprob = -0.2 if value == right else -0.6
                choice["logprobs"] = {
                    "content": [{"token": w, "logprob": logprob, "bytes": None, "top_logprobs": []} for w in words]
                }
            choices.append(choice)
        prompt_tokens = sum(len(str(m.get("content") or "").split()) + 4 for m in messages if isinstance(m, dict))
        stats = self.stats
        stats.requests += 1
        stats.choices += count
        stats.requests_by_n[n] = stats.requests_by_n.get(n, 0) + 1
        stats.prompt_tokens += prompt_tokens
        stats.completion_tokens += completion_tokens
        self._ids += 1
        return {
            "id": f"chatcmpl-mock-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.config.model, "object": "model", "created": 0, "owned_by": "thinkloop"}],
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
    return _response(status, {"error": {"message": message, "type": "invalid_request_error", "code": None}},
                     close=close)


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


@asynccontextmanager
async def serve_mock(config: MockConfig | None = None, *, port: int = 0) -> AsyncIterator[MockServer]:
    """Run a mock server in this event loop for the duration of the block (tests)."""
    server = MockServer(config)
    async with anyio.create_task_group() as group:
        await group.start(server.serve, port)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()


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
            sys.executable, "-m", self.module, "--port", "0",
            "--latency", repr(config.latency), "--p-right", repr(config.p_right),
            "--distractors", str(config.distractors), "--filler-words", str(config.filler_words),
            "--model", config.model, "--seed", str(config.seed),
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m thinkloop.testing.mock_server``: serve until interrupted; prints its URL first."""
    parser = argparse.ArgumentParser(prog="python -m thinkloop.testing.mock_server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--p-right", type=float, default=0.6)
    parser.add_argument("--distractors", type=int, default=50)
    parser.add_argument("--max-choices", type=int, default=None, help="1 ignores n, like llama.cpp")
    parser.add_argument("--filler-words", type=int, default=24)
    parser.add_argument("--model", default="mock")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = MockConfig(
        latency=args.latency, p_right=args.p_right, distractors=args.distractors, max_choices=args.max_choices,
        filler_words=args.filler_words, model=args.model, seed=args.seed,
    )
    server = MockServer(config)

    async def run() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.serve, args.port)
            sys.stdout.write(f"listening on {server.base_url}\n")
            sys.stdout.flush()

    with suppress(KeyboardInterrupt):
        anyio.run(run)


if __name__ == "__main__":
    main()
