"""A streamed chat completion put back together: ``chat.completion.chunk`` events into one reply body.

Why stream at all when the runtime wants the whole reply: a reasoning model may think for minutes before
its first answer token, and proxies drop a connection that carries nothing for that long; a stream keeps
bytes flowing. :class:`StreamAssembler` folds the chunks into the JSON a non-streamed request would have
got, so one parser (:func:`thinkloop.backends.openai.completion_from_json`) reads both. Reasoning deltas
arrive as ``delta.reasoning_content`` or ``delta.reasoning``, or inline in ``delta.content``.
"""

from __future__ import annotations

from typing import Any


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
        """Fold in one chunk (the last usually carries ``usage`` and no choices)."""
        self._model = chunk.get("model") or self._model
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = self._choices.setdefault(part.get("index") or 0, _Choice())
            delta = part.get("delta") or {}
            for key, into in (("content", choice.content), ("reasoning_content", choice.reasoning_content),
                              ("reasoning", choice.reasoning)):
                if delta.get(key):
                    into.append(delta[key])
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(choice.tool_calls, call)
            logprobs = (part.get("logprobs") or {}).get("content")
            if logprobs:
                choice.logprobs.extend(logprobs)
            if part.get("finish_reason"):
                choice.finish_reason = part["finish_reason"]

    def completion(self) -> dict[str, Any]:
        """The reply as a non-streamed request would have got it."""
        choices = []
        for index, choice in sorted(self._choices.items()):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(choice.content)}
            if choice.reasoning_content:
                message["reasoning_content"] = "".join(choice.reasoning_content)
            if choice.reasoning:
                message["reasoning"] = "".join(choice.reasoning)
            if choice.tool_calls:
                message["tool_calls"] = [call for _, call in sorted(choice.tool_calls.items())]
            choices.append({
                "index": index, "message": message, "finish_reason": choice.finish_reason,
                "logprobs": {"content": choice.logprobs} if choice.logprobs else None,
            })
        if not choices:
            raise ValueError("the stream ended without a choice")
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
