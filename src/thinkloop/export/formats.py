"""The record shapes a fine-tuning job reads, each a pydantic schema every exported line is checked against.

- ``openai-sft``: OpenAI's chat fine-tuning file, ``{"messages": [...]}``. Earlier assistant turns of a
  re-prompted conversation carry ``"weight": 0`` so only the accepted reply is trained on. OpenAI refuses
  unknown keys, so provenance goes to a sidecar file, never into the record.
- ``hf-sft``: the conversational format of Hugging Face TRL's ``SFTTrainer`` (``{"messages": [...]}``); the
  model's thinking, when asked for, rides on the assistant message as ``reasoning_content`` (the key the chat
  templates of open reasoning models, Qwen3's among them, render as their thinking).
- ``trl-dpo``: TRL's ``DPOTrainer`` conversational preference format, ``{"prompt", "chosen", "rejected"}``.
- ``openai-dpo``: OpenAI's preference fine-tuning file, ``{"input": {"messages"}, "preferred_output",
  "non_preferred_output"}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from thinkloop.export.candidates import ExportError, Reply

Format = Literal["openai-sft", "hf-sft", "trl-dpo", "openai-dpo"]
FORMATS: tuple[str, ...] = ("openai-sft", "hf-sft", "trl-dpo", "openai-dpo")
PREFERENCE_FORMATS = frozenset({"trl-dpo", "openai-dpo"})
THINKING_FORMATS = frozenset({"hf-sft", "trl-dpo"})
"""Formats with a place for the model's thinking beside its reply."""

Text = Annotated[str, StringConstraints(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: Text
    weight: Literal[0, 1] | None = None
    reasoning_content: Text | None = None

    @model_validator(mode="after")
    def _assistant_only_fields(self) -> ChatMessage:
        if self.role != "assistant" and (self.weight is not None or self.reasoning_content is not None):
            raise ValueError("only an assistant message carries weight or reasoning_content")
        return self


def _one_assistant(messages: list[ChatMessage]) -> list[ChatMessage]:
    if len(messages) != 1 or messages[0].role != "assistant":
        raise ValueError("a preference side is exactly one assistant message")
    return messages


def _ends_with_assistant(messages: list[ChatMessage]) -> list[ChatMessage]:
    if not messages or messages[-1].role != "assistant" or messages[-1].weight == 0:
        raise ValueError("a training conversation ends with the (trained) assistant reply")
    return messages


def _prompt_only(messages: list[ChatMessage]) -> list[ChatMessage]:
    if not messages or messages[-1].role != "user":
        raise ValueError("a prompt ends with the user's message")
    if any(m.weight is not None or m.reasoning_content is not None for m in messages):
        raise ValueError("a prompt carries no weights or thinking")
    return messages


class OpenAISFT(_Strict):
    messages: list[ChatMessage]

    @model_validator(mode="after")
    def _check(self) -> OpenAISFT:
        _ends_with_assistant(self.messages)
        if any(m.reasoning_content is not None for m in self.messages):
            raise ValueError("OpenAI's chat fine-tuning format has no reasoning_content")
        return self


class HFSFT(_Strict):
    messages: list[ChatMessage]

    @model_validator(mode="after")
    def _check(self) -> HFSFT:
        _ends_with_assistant(self.messages)
        if any(m.weight is not None for m in self.messages):
            raise ValueError("TRL's conversational format has no per-message weight")
        return self


class TRLDPO(_Strict):
    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]

    @model_validator(mode="after")
    def _check(self) -> TRLDPO:
        _prompt_only(self.prompt)
        _one_assistant(self.chosen)
        _one_assistant(self.rejected)
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are the same reply")
        return self


class OpenAIInput(_Strict):
    messages: list[ChatMessage]


class OpenAIDPO(_Strict):
    input: OpenAIInput
    preferred_output: list[ChatMessage]
    non_preferred_output: list[ChatMessage]

    @model_validator(mode="after")
    def _check(self) -> OpenAIDPO:
        _prompt_only(self.input.messages)
        _one_assistant(self.preferred_output)
        _one_assistant(self.non_preferred_output)
        if any(m.reasoning_content is not None for m in self.preferred_output + self.non_preferred_output):
            raise ValueError("OpenAI's preference format has no reasoning_content")
        if self.preferred_output == self.non_preferred_output:
            raise ValueError("preferred and non-preferred are the same reply")
        return self


SCHEMAS: dict[str, type[BaseModel]] = {
    "openai-sft": OpenAISFT,
    "hf-sft": HFSFT,
    "trl-dpo": TRLDPO,
    "openai-dpo": OpenAIDPO,
}

PromptMode = Literal["question", "sent"]


def prompt_messages(reply: Reply, mode: PromptMode) -> list[dict[str, Any]]:
    """What the model is trained to answer: the bare question, or the conversation exactly as sent.

    ``sent`` keeps the system prompt and every earlier round (a rejected attempt and the check's feedback) as
    the model saw them; earlier assistant turns are context, weighted 0 where the format has weights.
    """
    if mode == "question":
        return [{"role": "user", "content": reply.question}]
    messages = []
    for message in reply.messages:
        if message.role not in ("system", "user", "assistant") or message.tool_calls or message.tool_call_id:
            raise Skip("a conversation with tool calls")
        messages.append({"role": message.role, "content": message.content})
    return messages


class Skip(Exception):
    """A reply this format cannot express (counted as skipped, with the reason)."""


def assistant(reply: Reply, *, thinking: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if thinking and reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    return message


def sft_record(fmt: str, reply: Reply, *, prompt: PromptMode, thinking: bool) -> dict[str, Any]:
    messages = prompt_messages(reply, prompt)
    if fmt == "openai-sft":
        messages = [m | {"weight": 0} if m["role"] == "assistant" else m for m in messages]
    return {"messages": [*messages, assistant(reply, thinking=thinking)]}


def preference_record(
    fmt: str, chosen: Reply, rejected: Reply, *, prompt: PromptMode, thinking: bool
) -> dict[str, Any]:
    messages = prompt_messages(chosen, prompt)
    if prompt == "sent" and prompt_messages(rejected, prompt) != messages:
        raise Skip("the two replies answered different conversations")
    if fmt == "openai-dpo":
        return {
            "input": {"messages": messages},
            "preferred_output": [assistant(chosen, thinking=False)],
            "non_preferred_output": [assistant(rejected, thinking=False)],
        }
    return {
        "prompt": messages,
        "chosen": [assistant(chosen, thinking=thinking)],
        "rejected": [assistant(rejected, thinking=thinking)],
    }


def validated(fmt: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record, checked against its format's schema; an :class:`ExportError` naming the fault if not."""
    try:
        SCHEMAS[fmt].model_validate(record)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())
        raise ExportError(f"an exported {fmt} record fails its schema ({problems})") from exc
    return record
