"""Fault modes for the mock server: a storm of 429s, and request counts per question.

The fault suite (``tests/test_faults_*.py``) needs a server that misbehaves on cue and that can prove, by
its own count, that a resumed benchmark sent no problem twice. :class:`FaultyMockServer` is the mock server
with two additions: the first ``storm`` chat requests are answered ``429`` (with ``retry-after-ms``, which
the ``openai`` SDK honours), and ``/stats`` counts requests per question (``requests_by_question``, keyed as
:func:`~thinkloop.testing.mock_server.question_key` keys them). Like the mock, it binds 127.0.0.1 only.

Run it in-process with :func:`serve_faulty`, or as a child process (``python -m thinkloop.testing.faults``,
or :class:`FaultyServerProcess`, which can also take a fixed port so a test can stop and restart it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from anyio.abc import ByteStream

from thinkloop.testing.mock_server import (
    MockConfig,
    MockModel,
    MockServer,
    MockServerProcess,
    MockStats,
    command_line,
    config_from,
    question_key,
    serve_until_interrupted,
    serving,
)


@dataclass
class FaultStats(MockStats):
    rate_limited: int = 0
    """Chat requests answered 429 by the storm."""
    requests_by_question: dict[str, int] = field(default_factory=dict)
    """Chat requests that reached the model (not the storm), per question key."""


class _CountingModel(MockModel):
    def __init__(self, config: MockConfig | None = None) -> None:
        super().__init__(config)
        self.stats: FaultStats = FaultStats()

    def reset(self) -> None:
        super().reset()
        self.stats = FaultStats(in_flight=self.stats.in_flight, max_in_flight=self.stats.in_flight)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = super().complete(body)
        prompt = next((str(m.get("content") or "") for m in reversed(body["messages"])
                       if isinstance(m, dict) and m.get("role") == "user"), "")
        key = question_key(prompt)
        counts = self.stats.requests_by_question
        counts[key] = counts.get(key, 0) + 1
        return payload


def _rate_limited(retry_after_ms: int, keep_alive: bool) -> bytes:
    body = json.dumps({"error": {"message": "rate limit reached, slow down", "type": "rate_limit_error",
                                 "code": "rate_limit_exceeded"}}).encode()
    head = (
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after-ms: {retry_after_ms}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class FaultyMockServer(MockServer):
    """The mock server, with a 429 storm for its first ``storm`` chat requests and per-question counts."""

    def __init__(self, config: MockConfig | None = None, *, storm: int = 0, retry_after_ms: int = 20) -> None:
        super().__init__(config)
        self.model = _CountingModel(config)
        self.storm_left = storm
        self.retry_after_ms = retry_after_ms

    @property
    def stats(self) -> FaultStats:
        return self.model.stats  # type: ignore[return-value]

    async def _chat(self, raw: bytes, stream: ByteStream, keep_alive: bool) -> None:
        if self.storm_left > 0:
            self.storm_left -= 1
            self.stats.rate_limited += 1
            await stream.send(_rate_limited(self.retry_after_ms, keep_alive))
            return
        await super()._chat(raw, stream, keep_alive)


@asynccontextmanager
async def serve_faulty(
    config: MockConfig | None = None, *, storm: int = 0, retry_after_ms: int = 20
) -> AsyncIterator[FaultyMockServer]:
    """Run a faulty mock server in this event loop for the duration of the block (tests)."""
    async with serving(FaultyMockServer(config, storm=storm, retry_after_ms=retry_after_ms)) as server:
        yield server


class FaultyServerProcess(MockServerProcess):
    """:class:`FaultyMockServer` in a child process; ``port`` fixes its port (``0``: a free one)."""

    module = "thinkloop.testing.faults"

    def __init__(self, config: MockConfig | None = None, *, port: int = 0, storm: int = 0,
                 startup_timeout: float = 30.0) -> None:
        super().__init__(config, startup_timeout=startup_timeout)
        self.port = port
        self.storm = storm

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--port") + 1] = str(self.port)
        return [*command, "--storm", str(self.storm)]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m thinkloop.testing.faults``: serve until interrupted; prints its URL first."""
    parser = command_line("python -m thinkloop.testing.faults")
    parser.add_argument("--storm", type=int, default=0, help="answer the first N chat requests with 429")
    args = parser.parse_args(argv)
    serve_until_interrupted(FaultyMockServer(config_from(args), storm=args.storm), args.port)


if __name__ == "__main__":
    main()
