"""Real streaming: the run's steps as ``delta.reasoning_content`` chunks while it works, then the answer.

One ASGI response per streamed request, with three tasks in one task group: the runs (their reasoning
accounts push paragraphs into a memory stream as each step finishes), the writer (turns items into
server-sent events) and a watcher that cancels everything when the client disconnects, which cancels the
runs and their upstream calls. The status line waits for the first chunk, so a request that fails before
its first step (an upstream 429, say) still gets a real HTTP error instead of a 200 with an error inside.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from thinkloop.serve.errors import ApiError, as_api_error
from thinkloop.serve.runs import RunReply, usage_json

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

RunStarter = Callable[[int, Callable[[str], None]], Awaitable[RunReply]]
"""Runs choice ``index``, handing each reasoning paragraph to the callback; returns the finished run."""


class ChunkMaker:
    """Builds ``chat.completion.chunk`` objects that share an id, a timestamp and a model name."""

    def __init__(self, completion_id: str, model: str) -> None:
        self.base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }

    def choice(
        self,
        index: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return (
            self.base
            | {"choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]}
            | extra
        )

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self.base | {"choices": [], "usage": usage}


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class RunStream:
    """The ASGI response for one streamed chat completion of ``n`` runs."""

    def __init__(
        self,
        *,
        n: int,
        start: RunStarter,
        chunks: ChunkMaker,
        include_usage: bool,
        info: Callable[[RunReply], dict[str, Any]],
        on_close: Callable[[list[RunReply] | None], None],
    ) -> None:
        self.n = n
        self.start = start
        self.chunks = chunks
        self.include_usage = include_usage
        self.info = info
        self.on_close = on_close
        self.replies: list[RunReply] | None = None
        self._started = False
        self._ended = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        items_in, items_out = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, receive, group.cancel_scope)
                group.start_soon(self._produce, items_in)
                await self._write(items_out, send)
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # The server is stopping (its grace period is over): end the stream as a stream ends, with an
            # error event and [DONE], rather than cutting it mid-chunk; the client learns why.
            await self._end_cut(send)
            raise
        finally:
            self.on_close(self.replies)

    async def _end_cut(self, send: Any) -> None:
        if self._ended:
            return
        error = ApiError(
            503, "the server is shutting down; the run was cancelled before it finished", code="server_shutting_down"
        )
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            try:
                if not self._started:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    await send({"type": "http.response.body", "body": json.dumps(error.body()).encode()})
                else:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": _event(error.body()) + _event("[DONE]"),
                            "more_body": False,
                        }
                    )
            except Exception:  # the client is gone already: nothing left to tell it
                pass
        self._ended = True

    @staticmethod
    async def _watch(receive: Any, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async def _produce(self, items: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
        replies: list[RunReply] = []

        async def one(index: int) -> None:
            reply = await self.start(index, lambda text: items.send_nowait(("reasoning", index, text)))
            replies.append(reply)
            items.send_nowait(("done", index, reply))

        with items:
            try:
                async with anyio.create_task_group() as runs:
                    for index in range(self.n):
                        runs.start_soon(one, index)
            except Exception as exc:
                items.send_nowait(("error", as_api_error(exc)))
                return
            items.send_nowait(("end", sorted(replies, key=lambda r: r.index)))

    async def _write(self, items: MemoryObjectReceiveStream[tuple[Any, ...]], send: Any) -> None:
        started = False
        greeted: set[int] = set()
        chunks = self.chunks

        async def body(data: bytes, more: bool = True) -> None:
            nonlocal started
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
                started = self._started = True
            await send({"type": "http.response.body", "body": data, "more_body": more})
            if not more:
                self._ended = True

        def delta(index: int, **fields: Any) -> dict[str, Any]:
            if index not in greeted:
                greeted.add(index)
                return {"role": "assistant", **fields}
            return fields

        async with items:
            async for item in items:
                kind = item[0]
                if kind == "reasoning":
                    _, index, text = item
                    await body(_event(chunks.choice(index, delta(index, reasoning_content=text))))
                elif kind == "done":
                    _, index, reply = item
                    message = reply.message()
                    content = delta(index, content=message["content"])
                    tool_calls = reply.tool_calls()
                    if tool_calls:
                        content["tool_calls"] = [{"index": i, **call} for i, call in enumerate(tool_calls)]
                    data = _event(chunks.choice(index, content, logprobs=reply.logprobs()))
                    data += _event(chunks.choice(index, {}, reply.finish_reason(), thinkloop=self.info(reply)))
                    await body(data)
                elif kind == "error":
                    error: ApiError = item[1]
                    if not started:
                        headers = [(b"content-type", b"application/json")]
                        headers += [(k.encode(), v.encode()) for k, v in error.headers().items()]
                        await send({"type": "http.response.start", "status": error.status, "headers": headers})
                        await send({"type": "http.response.body", "body": json.dumps(error.body()).encode()})
                        self._ended = True
                        return
                    await body(_event(error.body()) + _event("[DONE]"), more=False)
                    return
                else:  # end
                    self.replies = item[1]
                    data = _event(chunks.usage(usage_json(item[1]))) if self.include_usage else b""
                    await body(data + _event("[DONE]"), more=False)
                    return
