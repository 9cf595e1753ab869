"""Open reasoning models' thinking, read from wherever a server puts it, and kept apart from the answer.

Open servers hand back a reasoning model's thinking in one of three shapes:

- ``message.reasoning_content`` (llama.cpp's server, SGLang, DeepSeek's API);
- ``message.reasoning`` (vLLM, Ollama's OpenAI-compatible API);
- a ``<think>...</think>`` block at the start of ``content`` (a server with no reasoning parser). A reply
  whose chat template opened the block in the prompt (DeepSeek-R1's distills) starts inside it and has only
  the closing tag. A block that is never closed is a reply cut off mid-thought: it has no answer text.

:func:`split_thinking` does the third; :func:`reasoning_usage` says how many tokens the thinking took: the
server's ``completion_tokens_details.reasoning_tokens`` where it reports them, else an estimate from the
text (:func:`estimate_tokens`, about four characters a token, as tokenizers average on English), marked
``reasoning_tokens_estimated``. Extraction and voting read only :attr:`Choice.text`; traces keep both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from thinkloop.types import Choice, Usage

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
CHARS_PER_TOKEN = 4
"""The estimate's ratio: BPE tokenizers average about four characters a token on English prose and maths."""


def split_thinking(content: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` from a reply that may carry its thinking inline.

    ``<think>R</think>A`` gives ``(R, A)``; ``R</think>A`` (the template opened the block) too; an unclosed
    ``<think>R`` gives ``(R, "")``: cut off mid-thought, no answer. Anything else is all answer.
    """
    if THINK_CLOSE not in content and THINK_OPEN not in content:
        return None, content  # nearly every reply: one scan each
    stripped = content.lstrip()
    if stripped.startswith(THINK_OPEN):
        body = stripped[len(THINK_OPEN) :]
        thought, closed, answer = body.partition(THINK_CLOSE)
        if not closed:
            return body.strip(), ""
        return thought.strip(), answer.lstrip()
    thought, closed, answer = content.partition(THINK_CLOSE)
    if closed and THINK_OPEN not in thought:
        return thought.strip(), answer.lstrip()
    return None, content


def join_reasoning(*parts: str | None) -> str | None:
    """The non-empty parts, in order, as one text (``None`` when there are none)."""
    kept = [p.strip() for p in parts if p and p.strip()]
    return "\n\n".join(kept) if kept else None


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate of ``text``'s length in tokens (at least 1 for any non-blank text)."""
    if not text.strip():
        return 0
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def reasoning_usage(usage: Usage, choices: Sequence[Choice]) -> Usage:
    """``usage`` with its reasoning tokens: the server's count when it gave a positive one, else estimated
    from the choices' reasoning text (clamped to the completion tokens, of which it is a part) and marked.

    A server that reports none (or 0) while the reply holds visible thinking is taken not to count it.
    """
    if usage.reasoning_tokens:
        return usage
    estimate = sum(estimate_tokens(c.reasoning) for c in choices if c.reasoning)
    if not estimate:
        return usage
    if usage.completion_tokens is not None:
        estimate = min(estimate, usage.completion_tokens)
    return usage.model_copy(update={"reasoning_tokens": estimate, "reasoning_tokens_estimated": True})


def split_choices(
    choices: Sequence[Choice], usage: Usage, *, count_tokens: Callable[[str], int] | None = None
) -> tuple[list[Choice], Usage]:
    """Choices with inline ``<think>`` blocks moved to :attr:`Choice.reasoning`, and usage with their tokens.

    A backend that has the model's tokenizer passes ``count_tokens``: the thinking is then counted, not
    estimated. Choices that already carry their reasoning, and usage that already counts it, are kept.
    """
    split = []
    for choice in choices:
        reasoning, text = (None, choice.text) if choice.reasoning is not None else split_thinking(choice.text)
        split.append(choice if reasoning is None else choice.model_copy(update={"reasoning": reasoning, "text": text}))
    if count_tokens is None or usage.reasoning_tokens:
        return split, reasoning_usage(usage, split)
    counted = sum(count_tokens(c.reasoning) for c in split if c.reasoning)
    if counted and usage.completion_tokens is not None:
        usage = usage.model_copy(update={"reasoning_tokens": min(counted, usage.completion_tokens)})
    return split, usage
