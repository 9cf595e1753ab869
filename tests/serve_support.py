"""Helpers for the ``thinkloop serve`` tests: the server as a subprocess, and an upstream that rate-limits.

The server runs exactly as a user starts it (``python -m thinkloop serve --port 0 ...``) on 127.0.0.1; the
test reads the URL it prints. Its stderr goes to a file, so a test can read the server's log.
"""

from __future__ import annotations

import json
import math
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
        self.url = line[len(READY) :].strip()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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
        head = (
            f"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\n"
            f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
        )
        await stream.send(head.encode() + body)


class ScriptedUpstream(MockServer):
    """An upstream whose reply the question's first word picks, each one a case the issue found:

    ``CTX400`` a context-length 400; ``RETRYINF`` a 429 with ``Retry-After: inf``; ``HANG`` no answer ever;
    ``THINK`` a reasoner's reply with ``reasoning_content``; ``TOOL`` a tool call with ``content: null``;
    ``NOANSWER`` replies without an answer line; ``LOGPROBS`` a reply with token logprobs. Anything else is
    answered "Answer: 42", each reply repeating the body it was sent (less the messages) as its first line and
    using ``min(max_tokens, 40)`` completion tokens.
    """

    async def _chat(self, raw: bytes, stream: Any, keep_alive: bool) -> None:
        self.stats.requests += 1
        body = json.loads(raw)
        question = body["messages"][-1]["content"]
        word = question.split()[0] if question.split() else ""
        n = body.get("n", 1)
        if word == "HANG":
            await anyio.sleep(math.inf)
        if word == "CTX400":
            error = {
                "message": "This model's maximum context length is 8 tokens",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
            await stream.send(_raw(400, {"error": error}))
            return
        if word == "RETRYINF":
            await stream.send(_raw(429, {"error": {"message": "slow down"}}, "retry-after: inf\r\n"))
            return
        sent = json.dumps({k: v for k, v in body.items() if k != "messages"}, sort_keys=True)
        message: dict[str, Any] = {"role": "assistant", "content": f"sent: {sent}\nThe sum is 42.\nAnswer: 42"}
        logprobs = None
        if word == "THINK":
            message["reasoning_content"] = "First I add the tens, then the ones."
        elif word == "TOOL":
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{}"}}],
            }
        elif word == "NOANSWER":
            message["content"] = "I would rather not say."
        elif word == "LOGPROBS":
            logprobs = {"content": [{"token": "42", "logprob": -0.25, "bytes": [52, 50], "top_logprobs": []}]}
        used = min(body.get("max_tokens") or body.get("max_completion_tokens") or 40, 40)
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "message": message,
                    "finish_reason": "tool_calls" if word == "TOOL" else "stop",
                    "logprobs": logprobs,
                }
                for i in range(n)
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": used * n, "total_tokens": 10 + used * n},
        }
        await stream.send(_raw(200, payload))


def _raw(status: int, payload: dict[str, Any], extra: str = "") -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def rate_limited_main(kind: str = "RateLimitedUpstream") -> None:
    """Serve an upstream of this module, printing ``listening on URL`` like the mock server."""
    server = globals()[kind]()

    async def run() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.serve, 0)
            sys.stdout.write(f"listening on {server.base_url}\n")
            sys.stdout.flush()

    anyio.run(run)


class RateLimitedUpstreamProcess:
    """:class:`RateLimitedUpstream` (or another upstream of this module) in a child process."""

    kind = "RateLimitedUpstream"

    def __enter__(self) -> RateLimitedUpstreamProcess:
        here = str(Path(__file__).parent)
        code = (
            f"import sys; sys.path.insert(0, {here!r}); import serve_support; "
            f"serve_support.rate_limited_main({self.kind!r})"
        )
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


class ScriptedUpstreamProcess(RateLimitedUpstreamProcess):
    """:class:`ScriptedUpstream` in a child process."""

    kind = "ScriptedUpstream"


def ask(question: str = "What is 12 + 30?") -> list[dict[str, str]]:
    """The messages of one user question."""
    return [{"role": "user", "content": question}]


def sdk_client(serve: ServeProcess) -> Any:
    """The official openai client for a running ``serve``, its retries off (the tests count requests)."""
    import openai

    return openai.OpenAI(base_url=serve.url, api_key="unused", max_retries=0)
