"""A reasoning mode for the mock server: replies that think first, in each shape open servers use.

:class:`ReasoningMockServer` is the mock server whose every choice carries visible thinking ahead of its
answer, put where one family of servers puts it (``shape``):

- ``reasoning_content``: ``message.reasoning_content`` (llama.cpp's server, SGLang, DeepSeek);
- ``reasoning``: ``message.reasoning`` (vLLM, Ollama);
- ``think-tags``: ``<think>...</think>`` at the start of ``content`` (no reasoning parser).

The thinking ends on a decoy (``so far it looks like D``, a wrong number) so a client that read the
reasoning as the answer would vote wrong. It streams when asked (``"stream": true``: server-sent
``chat.completion.chunk`` events, usage last when ``stream_options.include_usage`` is set), and reports
``completion_tokens_details.reasoning_tokens`` only when ``report_reasoning_tokens`` is on (a token is a
word here, as everywhere in the mock). A ``max_tokens`` shorter than the thinking cuts the reply
mid-thought: no answer, ``finish_reason="length"`` (in ``think-tags``, an unclosed block).

Run it in-process with :func:`serve_reasoner`, or in its own process (``python -m
thinkloop.testing.mock_reasoner --shape reasoning``, or :class:`ReasoningServerProcess`). 127.0.0.1 only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, get_args

import anyio
from anyio.abc import ByteStream

from thinkloop.testing.mock_server import (
    MockConfig,
    MockModel,
    MockServer,
    MockServerProcess,
    _error,
    command_line,
    config_from,
    right_answer,
    serve_until_interrupted,
    serving,
)

Shape = Literal["reasoning_content", "reasoning", "think-tags"]
SHAPES: tuple[str, ...] = get_args(Shape)
_STREAM_PIECES = 4
"""Deltas per part (thinking, answer) of a streamed choice, so a client must join pieces."""


class ReasoningModel(MockModel):
    """The mock model's answers, each preceded by its thinking, in one server shape."""

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        shape: Shape = "reasoning_content",
        report_reasoning_tokens: bool = False,
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
        super().__init__(config)
        self.shape = shape
        self.report_reasoning_tokens = report_reasoning_tokens

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion in this model's shape (the caller streams it if the body asked)."""
        plain = {
            k: v
            for k, v in body.items()
            if k not in ("stream", "stream_options", "max_tokens", "max_completion_tokens")
        }
        payload = super().complete(plain)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        prompt = next(
            (
                str(m.get("content") or "")
                for m in reversed(body["messages"])
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        decoy = right_answer(prompt) + 1000
        completion = reasoning = 0
        for choice in payload["choices"]:
            value = choice["message"]["content"].rsplit(" ", 1)[-1].rstrip(".")
            thought = f"{self._filler} So far it looks like {decoy}, but let me check that again.".split()
            answer = f"The answer is {value}.".split()
            finish = "stop"
            if isinstance(max_tokens, int) and 0 < max_tokens < len(thought) + len(answer):
                finish = "length"
                thought, answer = thought[:max_tokens], answer[: max(0, max_tokens - len(thought))]
            completion += len(thought) + len(answer)
            reasoning += len(thought)
            choice["message"] = self._message(" ".join(thought), " ".join(answer), closed=finish == "stop")
            choice["finish_reason"] = finish
        usage = payload["usage"]
        self.stats.completion_tokens += completion - usage["completion_tokens"]
        usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + completion
        if self.report_reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return payload

    def _message(self, thought: str, answer: str, *, closed: bool) -> dict[str, Any]:
        if self.shape == "think-tags":
            content = f"<think>\n{thought}\n</think>\n\n{answer}" if closed else f"<think>\n{thought}"
            return {"role": "assistant", "content": content}
        return {"role": "assistant", "content": answer, self.shape: thought}


def stream_events(payload: dict[str, Any], *, include_usage: bool, done: bool = True) -> bytes:
    """A completion as the server-sent events a streaming server sends, ``data: [DONE]`` last (unless
    ``done`` is false: a stream cut short). A choice whose ``finish_reason`` is ``None`` gets no last delta."""
    base = {
        "id": payload["id"],
        "object": "chat.completion.chunk",
        "created": payload["created"],
        "model": payload["model"],
    }
    events: list[dict[str, Any]] = []
    for choice in payload["choices"]:
        index, message = choice["index"], choice["message"]
        events.append(base | {"choices": [{"index": index, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for key in ("reasoning_content", "reasoning", "content"):
            for piece in _pieces(message.get(key) or ""):
                events.append(base | {"choices": [{"index": index, "delta": {key: piece}, "finish_reason": None}]})
        if choice["finish_reason"] is not None:
            events.append(base | {"choices": [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if include_usage:
        events.append(base | {"choices": [], "usage": payload["usage"]})
    lines = [f"data: {json.dumps(event, separators=(',', ':'))}\n\n" for event in events]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def _pieces(text: str) -> list[str]:
    if not text:
        return []
    size = -(-len(text) // _STREAM_PIECES)
    return [text[i : i + size] for i in range(0, len(text), size)]


class ReasoningMockServer(MockServer):
    """The mock server in reasoning mode (see the module docstring); streams when a request asks."""

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        shape: Shape = "reasoning_content",
        report_reasoning_tokens: bool = False,
    ) -> None:
        super().__init__(config)
        self.model = ReasoningModel(config, shape=shape, report_reasoning_tokens=report_reasoning_tokens)

    async def _chat(self, raw: bytes, stream: ByteStream, keep_alive: bool) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and body.get("stream") is True):
            await super()._chat(raw, stream, keep_alive)
            return
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            try:
                payload = self.model.complete(body)
            except ValueError as exc:
                stats.errors += 1
                await stream.send(_error(400, str(exc), close=not keep_alive))
                return
            await anyio.sleep(self.config.latency)
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = stream_events(payload, include_usage=include_usage)
            head = (
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                f"content-length: {len(events)}\r\nconnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            )
            await stream.send(head.encode("latin-1") + events)
        finally:
            stats.in_flight -= 1


@asynccontextmanager
async def serve_reasoner(
    config: MockConfig | None = None, *, shape: Shape = "reasoning_content", report_reasoning_tokens: bool = False
) -> AsyncIterator[ReasoningMockServer]:
    """Run a reasoning mock server in this event loop for the duration of the block (tests)."""
    server = ReasoningMockServer(config, shape=shape, report_reasoning_tokens=report_reasoning_tokens)
    async with serving(server):
        yield server


class ReasoningServerProcess(MockServerProcess):
    """:class:`ReasoningMockServer` in a child process."""

    module = "thinkloop.testing.mock_reasoner"

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        shape: Shape = "reasoning_content",
        report_reasoning_tokens: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(config, startup_timeout=startup_timeout)
        self.shape = shape
        self.report_reasoning_tokens = report_reasoning_tokens

    def command(self) -> list[str]:
        extra = ["--report-reasoning-tokens"] if self.report_reasoning_tokens else []
        return [*super().command(), "--shape", self.shape, *extra]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m thinkloop.testing.mock_reasoner``: serve until interrupted; prints its URL first."""
    parser = command_line("python -m thinkloop.testing.mock_reasoner")
    parser.add_argument("--shape", choices=SHAPES, default="reasoning_content")
    parser.add_argument(
        "--report-reasoning-tokens",
        action="store_true",
        help="report completion_tokens_details.reasoning_tokens (else clients must estimate)",
    )
    args = parser.parse_args(argv)
    server = ReasoningMockServer(
        config_from(args), shape=args.shape, report_reasoning_tokens=args.report_reasoning_tokens
    )
    serve_until_interrupted(server, args.port)


if __name__ == "__main__":
    main()
