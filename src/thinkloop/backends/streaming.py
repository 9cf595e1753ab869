"""A streamed chat completion put back together: ``chat.completion.chunk`` events into one reply body.

Why stream at all when the runtime wants the whole reply: a reasoning model may think for minutes before
its first answer token, and proxies drop a connection that carries nothing for that long; a stream keeps
bytes flowing. :class:`StreamAssembler` folds the chunks into the JSON a non-streamed request would have
got, so one parser (:func:`thinkloop.backends.openai.completion_from_json`) reads both. Reasoning deltas
arrive as ``delta.reasoning_content`` or ``delta.reasoning``, or inline in ``delta.content``.
"""

from __future__ import annotations

from typing import Any


class StreamError(ValueError):
    """The server ended the stream with an error event, after it may have generated (and billed) tokens."""


class StreamCut(ValueError):
    """The stream ended before every choice finished: what arrived is a fragment, not a reply."""


class _Choice:
    __slots__ = ("content", "finish_reason", "logprobs", "reasoning", "reasoning_content", "tool_calls")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_content: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None


class StreamAssembler:
    """Folds ``chat.completion.chunk`` dicts into one ``chat.completion`` dict."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._model: str | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        """Fold in one chunk (the last usually carries ``usage`` and no choices). A chunk that is an error
        event (``{"error": ...}``, which the SDK lets through under some event names) raises ``ValueError``."""
        if not isinstance(chunk, dict):
            raise ValueError(f"the stream sent {type(chunk).__name__}, not a chunk")
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else None
            raise StreamError(f"the stream ended in an error event: {message or error}")
        self._model = chunk.get("model") or self._model
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = self._choices.setdefault(part.get("index") or 0, _Choice())
            delta = part.get("delta") or {}
            for key, into in (
                ("content", choice.content),
                ("reasoning_content", choice.reasoning_content),
                ("reasoning", choice.reasoning),
            ):
                if delta.get(key):
                    into.append(delta[key])
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(choice.tool_calls, call)
            logprobs = (part.get("logprobs") or {}).get("content")
            if logprobs:
                choice.logprobs.extend(logprobs)
            if part.get("finish_reason"):
                choice.finish_reason = part["finish_reason"]

    @property
    def cut(self) -> list[int]:
        """The choices that never got a ``finish_reason``: the stream ended before they did (a connection
        closed mid-reply, an error event the server sent as a plain chunk), so their text is a fragment."""
        return [index for index, choice in sorted(self._choices.items()) if choice.finish_reason is None]

    def completion(self) -> dict[str, Any]:
        """The reply as a non-streamed request would have got it. Raises :class:`StreamCut` when a choice
        has no ``finish_reason``: a cut reply is never handed on as a whole one ("Answer: 12" of a cut
        "1234" is not the answer 12)."""
        choices = []
        for index, choice in sorted(self._choices.items()):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(choice.content)}
            if choice.reasoning_content:
                message["reasoning_content"] = "".join(choice.reasoning_content)
            if choice.reasoning:
                message["reasoning"] = "".join(choice.reasoning)
            if choice.tool_calls:
                message["tool_calls"] = [call for _, call in sorted(choice.tool_calls.items())]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": choice.finish_reason,
                    "logprobs": {"content": choice.logprobs} if choice.logprobs else None,
                }
            )
        if not choices:
            raise StreamCut("the stream ended without a choice")
        cut = self.cut
        if cut:
            raise StreamCut(
                f"the stream was cut off: choice {', '.join(map(str, cut))} got no finish_reason "
                f"(after {sum(len(''.join(self._choices[i].content)) for i in cut)} characters of text)"
            )
        return {"object": "chat.completion", "model": self._model, "choices": choices, "usage": self._usage}


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Tool calls stream in fragments keyed by ``index``: the id and name once, the arguments in pieces."""
    call = calls.setdefault(delta.get("index") or 0, {"type": "function", "function": {"name": "", "arguments": ""}})
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]
