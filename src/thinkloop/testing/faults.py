"""Fault modes for the mock server: a storm of 429s, scripted faults per request, and request counts.

The fault suite needs a server that misbehaves on cue and that can prove, by its own count, that a resumed
benchmark sent no problem twice and that a run was billed no more than its budget. :class:`FaultyMockServer`
is the mock server with these additions: the first ``storm`` chat requests are answered ``429`` (with
``retry-after-ms``, the wait the runtime honours); ``faults`` scripts what each later chat request meets
(see :data:`FAULTS`; ``always`` applies once the script runs out); it streams when a request asks; and
``/stats`` counts requests per question (``requests_by_question``, keyed as
:func:`~thinkloop.testing.mock_server.question_key` keys them) and the tokens it billed (``billed_tokens``:
every request that reached the model, whatever happened to its reply). Like the mock, it binds 127.0.0.1 only.

Run it in-process with :func:`serve_faulty`, or as a child process (``python -m thinkloop.testing.faults``,
or :class:`FaultyServerProcess`, which can also take a fixed port so a test can stop and restart it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteStream

from thinkloop.testing.mock_reasoner import stream_events
from thinkloop.testing.mock_server import (
    MockConfig,
    MockModel,
    MockServer,
    MockServerProcess,
    MockStats,
    _error,
    _response,
    command_line,
    config_from,
    question_key,
    serve_until_interrupted,
    serving,
)

FAULTS = ("ok", "error", "cut", "truncate", "hang", "401", "500")
"""What a chat request can meet: ``ok``; ``error`` (streamed: half the reply, then an SSE error event; not
streamed: a 500 after the work); ``cut`` (streamed: the connection closes mid-number, with no
``finish_reason`` and no ``[DONE]``; not streamed: half the JSON body); ``truncate`` (half the body under a
full ``Content-Length``); ``hang`` (accepted, never answered); ``401``; ``500`` (before any work)."""

_BILLED = frozenset({"ok", "error", "cut", "truncate", "hang"})
"""Faults that strike after the model did the work: the server bills them."""


@dataclass
class FaultStats(MockStats):
    rate_limited: int = 0
    """Chat requests answered 429 by the storm."""
    requests_by_question: dict[str, int] = field(default_factory=dict)
    """Chat requests that reached the model (not the storm), per question key."""
    faults: dict[str, int] = field(default_factory=dict)
    """Chat requests per fault met (``ok`` included)."""
    billed_tokens: int = 0
    """Prompt and completion tokens of every request the model worked on, whether or not its reply arrived
    whole: what a provider would bill."""


class _CountingModel(MockModel):
    def __init__(self, config: MockConfig | None = None) -> None:
        super().__init__(config)
        self.stats: FaultStats = FaultStats()

    def reset(self) -> None:
        super().reset()
        self.stats = FaultStats(in_flight=self.stats.in_flight, max_in_flight=self.stats.in_flight)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = super().complete(body)
        prompt = next(
            (
                str(m.get("content") or "")
                for m in reversed(body["messages"])
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        key = question_key(prompt)
        counts = self.stats.requests_by_question
        counts[key] = counts.get(key, 0) + 1
        return payload


def _rate_limited(retry_after_ms: int, keep_alive: bool) -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": "rate limit reached, slow down",
                "type": "rate_limit_error",
                "code": "rate_limit_exceeded",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after-ms: {retry_after_ms}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class FaultyMockServer(MockServer):
    """The mock server, with a 429 storm for its first ``storm`` chat requests, the scripted ``faults`` (one
    of :data:`FAULTS` per later chat request, then ``always``), streaming, and per-question counts."""

    model: _CountingModel

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        storm: int = 0,
        retry_after_ms: int = 20,
        faults: Sequence[str] = (),
        always: str = "ok",
        api_key: str | None = None,
    ) -> None:
        super().__init__(config)
        self.api_key = api_key
        unknown = sorted({*faults, always} - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
        self.model = _CountingModel(config)
        self.storm_left = storm
        self.retry_after_ms = retry_after_ms
        self.faults = list(faults)
        self.always = always

    @property
    def stats(self) -> FaultStats:
        return self.model.stats

    def admits(self, path: str, headers: dict[str, str]) -> bool:
        """With ``api_key``, only requests bearing it (every API route; the test counters stay open)."""
        if self.api_key is None or not path.startswith("/v1/"):
            return True
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def _next_fault(self) -> str:
        return self.faults.pop(0) if self.faults else self.always

    async def _chat(self, raw: bytes, stream: ByteStream, keep_alive: bool) -> None:
        if self.storm_left > 0:
            self.storm_left -= 1
            self.stats.rate_limited += 1
            await stream.send(_rate_limited(self.retry_after_ms, keep_alive))
            return
        fault = self._next_fault()
        stats = self.stats
        stats.faults[fault] = stats.faults.get(fault, 0) + 1
        if fault == "401":
            await stream.send(_error(401, "Incorrect API key provided", close=not keep_alive))
            return
        if fault == "500":
            await stream.send(_error(500, "the server had an error before it started", close=not keep_alive))
            return
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await self._reply(fault, raw, stream, keep_alive)
        finally:
            stats.in_flight -= 1

    async def _reply(self, fault: str, raw: bytes, stream: ByteStream, keep_alive: bool) -> None:
        stats = self.stats
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            streamed = body.get("stream") is True
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            payload = self.model.complete({k: v for k, v in body.items() if k not in ("stream", "stream_options")})
        except ValueError as exc:
            stats.errors += 1
            await stream.send(_error(400, str(exc), close=not keep_alive))
            return
        if fault in _BILLED:
            stats.billed_tokens += payload["usage"]["prompt_tokens"] + payload["usage"]["completion_tokens"]
        await anyio.sleep(self.config.latency)
        if fault == "hang":
            await anyio.sleep_forever()
        if fault == "ok":
            if streamed:
                await stream.send(_stream_head(keep_alive) + stream_events(payload, include_usage=include_usage))
            else:
                await stream.send(_response(200, payload, close=not keep_alive))
            return
        if fault == "error" and not streamed:
            await stream.send(_error(500, "the server failed after generating", close=not keep_alive))
            return
        if fault == "error":
            events = stream_events(_cut_payload(payload, at="middle"), include_usage=False, done=False)
            error = {
                "error": {"message": "The server had an error while processing your request", "type": "server_error"}
            }
            await stream.send(_stream_head(False) + events + f"data: {json.dumps(error)}\n\n".encode())
        elif fault == "cut" and streamed:
            events = stream_events(_cut_payload(payload, at="number"), include_usage=False, done=False)
            await stream.send(_stream_head(False) + events)
        else:  # "truncate", or "cut" of a whole body: half of it under the full length
            body_bytes = json.dumps(payload).encode()
            head = (
                f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body_bytes)}\r\n"
                "connection: close\r\n\r\n"
            )
            await stream.send(head.encode("latin-1") + body_bytes[: len(body_bytes) // 2])
        await stream.aclose()  # the connection ends here: the client reads what it got


def _stream_head(keep_alive: bool) -> bytes:
    """An event stream's head without a length: it ends when the connection closes (a cut stream ends
    cleanly, as a proxy that dropped the upstream would end it)."""
    return (
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
    ).encode("latin-1")


def _cut_payload(payload: dict[str, Any], *, at: str) -> dict[str, Any]:
    """The reply as far as a cut stream carried it: each choice's text stops in the middle of its last
    number (``at="number"``: "The answer is 1234." arrives as "The answer is 12") or halfway
    (``at="middle"``), with no ``finish_reason``."""
    choices = []
    for choice in payload["choices"]:
        text = choice["message"]["content"]
        stop = len(text) // 2
        if at == "number":
            digits = [i for i, char in enumerate(text) if char.isdigit()]
            if digits:
                last = digits[-1]
                first = last
                while first > 0 and text[first - 1].isdigit():
                    first -= 1
                stop = first + max(1, (last + 1 - first) // 2)
        message = dict(choice["message"], content=text[:stop])
        choices.append(dict(choice, message=message, finish_reason=None, logprobs=None))
    return dict(payload, choices=choices)


@asynccontextmanager
async def serve_faulty(
    config: MockConfig | None = None,
    *,
    storm: int = 0,
    retry_after_ms: int = 20,
    faults: Sequence[str] = (),
    always: str = "ok",
    api_key: str | None = None,
) -> AsyncIterator[FaultyMockServer]:
    """Run a faulty mock server in this event loop for the duration of the block (tests)."""
    server = FaultyMockServer(
        config, storm=storm, retry_after_ms=retry_after_ms, faults=faults, always=always, api_key=api_key
    )
    async with serving(server) as running:
        yield running


class FaultyServerProcess(MockServerProcess):
    """:class:`FaultyMockServer` in a child process; ``port`` fixes its port (``0``: a free one)."""

    module = "thinkloop.testing.faults"

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        port: int = 0,
        storm: int = 0,
        startup_timeout: float = 30.0,
        faults: Sequence[str] = (),
        always: str = "ok",
        api_key: str | None = None,
    ) -> None:
        super().__init__(config, startup_timeout=startup_timeout)
        self.port = port
        self.storm = storm
        self.faults = tuple(faults)
        self.always = always
        self.api_key = api_key

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--port") + 1] = str(self.port)
        extra = ["--faults", ",".join(self.faults)] if self.faults else []
        if self.api_key is not None:
            extra += ["--api-key", self.api_key]
        return [*command, "--storm", str(self.storm), "--always", self.always, *extra]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m thinkloop.testing.faults``: serve until interrupted; prints its URL first."""
    parser = command_line("python -m thinkloop.testing.faults")
    parser.add_argument("--storm", type=int, default=0, help="answer the first N chat requests with 429")
    parser.add_argument("--faults", default="", help=f"comma-separated, one per chat request: {', '.join(FAULTS)}")
    parser.add_argument("--always", default="ok", choices=FAULTS, help="the fault once --faults runs out")
    parser.add_argument("--api-key", default=None, help="answer 401 to requests without this bearer key")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    server = FaultyMockServer(
        config_from(args), storm=args.storm, faults=faults, always=args.always, api_key=args.api_key
    )
    serve_until_interrupted(server, args.port)


if __name__ == "__main__":
    main()
