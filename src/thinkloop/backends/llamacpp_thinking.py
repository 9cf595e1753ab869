"""A thinking budget for an in-process reasoning model: think at most N tokens, then answer (budget forcing).

An open reasoning model (DeepSeek-R1's distills, QwQ, Qwen3) thinks inside ``<think>...</think>`` before it
answers, and left alone may think for thousands of tokens. Because this backend owns the whole completion,
it can do what s1 (Muennighoff et al., 2025) and llama.cpp's ``--reasoning-budget`` do: generate after an
opening ``<think>`` (added unless the chat template already ended the prompt with one) until the model closes
the block itself, stops, or reaches ``budget`` tokens; then continue from the thinking plus a bridge to the
answer. A model cut off by the budget gets :data:`FORCE_ANSWER` (``</think>`` and ``Final answer:``, s1's
forcing text), one that stopped on its own gets :data:`CLOSE_THINKING`; the answer is generated after it.

``max_tokens`` still caps the whole reply (opening tag, thinking, bridge and answer together), so a budget
reserved for the call holds: the thinking gets at most ``max_tokens`` less the tags and one answer token.
Usage is exact: the thinking's tokens are counted as generated (``reasoning_tokens``, never estimated), the
tags and the bridge as the completion tokens they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from thinkloop.backends.llamacpp_batch import DecodeCancelled
from thinkloop.exceptions import BackendError
from thinkloop.types import ChatRequest, Choice, Usage

THINK_OPEN = "<think>\n"
CLOSE_THINKING = "\n</think>\n\n"
ANSWER_PREFIX = "Final answer:"
FORCE_ANSWER = CLOSE_THINKING + ANSWER_PREFIX

Sample = Callable[[list[int], int, Sequence[str]], tuple[str, str | None, int]]
"""``(context tokens, max_tokens, stop strings) -> (text, finish_reason, completion tokens)``."""
Tokenize = Callable[[str], list[int]]


@dataclass(frozen=True)
class ThoughtAnswer:
    """One choice generated under a thinking budget."""

    reasoning: str
    text: str
    finish_reason: str | None
    forced: bool
    """The budget cut the thinking off and :data:`FORCE_ANSWER` made the model answer."""
    completion_tokens: int
    reasoning_tokens: int


class NoRoomToThink(ValueError):
    """``max_tokens`` (or the context window) leaves no room for the tags and an answer."""


def think_then_answer(
    prompt: list[int],
    *,
    budget: int,
    limit: int,
    n_ctx: int,
    prompt_opens_thinking: bool,
    tokenize: Tokenize,
    sample: Sample,
    template_stop: Sequence[str],
    answer_stop: Sequence[str],
) -> ThoughtAnswer:
    """Think after ``prompt`` for at most ``budget`` tokens, then answer, within ``limit`` tokens in all."""
    opening = [] if prompt_opens_thinking else tokenize(THINK_OPEN)
    force, close = tokenize(FORCE_ANSWER), tokenize(CLOSE_THINKING)
    fixed = len(opening) + max(len(force), len(close))
    if limit < fixed + 1:
        raise NoRoomToThink(
            f"max_tokens={limit} leaves no room to think and answer: the thinking tags alone take {fixed} tokens"
        )
    think_limit = min(budget, limit - fixed - 1)
    context = prompt + opening
    if think_limit > 0:
        thought, finish, thought_tokens = sample(context, think_limit, ["</think>", *template_stop])
    else:
        thought, finish, thought_tokens = "", "length", 0
    forced = finish == "length"
    bridge = force if forced else close
    context = context + tokenize(thought) + bridge
    room = min(limit - len(opening) - thought_tokens - len(bridge), n_ctx - len(context))
    if room < 1:
        raise NoRoomToThink(f"the context window of {n_ctx} tokens is full after the thinking")
    answer, answer_finish, answer_tokens = sample(context, room, [*template_stop, *answer_stop])
    text = f"{ANSWER_PREFIX}{answer}" if forced else answer
    return ThoughtAnswer(
        reasoning=thought.strip(),
        text=text,
        finish_reason=answer_finish,
        forced=forced,
        completion_tokens=len(opening) + thought_tokens + len(bridge) + answer_tokens,
        reasoning_tokens=thought_tokens,
    )


def opens_thinking(tail: str) -> bool:
    """Whether a rendered prompt's end already opened the thinking block (R1 distills' templates do)."""
    return tail.rstrip().endswith("<think>")


def generate_thinking(
    llama_cpp: Any,
    llama: Any,
    request: ChatRequest,
    prompt: tuple[list[int], list[str], Any],
    *,
    budget: int,
    n_ctx: int,
    params: dict[str, Any],
    cancelled: threading.Event,
    name: str,
) -> tuple[list[Choice], Usage]:
    """Every choice of ``request`` under a thinking budget, one after another on ``llama`` (the caller holds
    its lock); the prompt is billed once, as on the backend's other paths."""
    tokens, template_stop, _ = prompt
    room = n_ctx - len(tokens)
    limit = room if request.max_tokens is None else min(request.max_tokens, room)
    criteria = llama_cpp.StoppingCriteriaList([lambda ids, logits: cancelled.is_set()])
    opened = opens_thinking(llama.detokenize(tokens[-4:]).decode("utf-8", errors="ignore"))

    def tokenize(text: str) -> list[int]:
        return llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    choices, completion, reasoning = [], 0, 0
    for index in range(request.n):
        seed = None if request.seed is None else request.seed + index

        def sample(context: list[int], max_tokens: int, stop: Sequence[str], seed: int | None = seed) -> Any:
            reply = llama.create_completion(
                prompt=context,
                stop=list(stop),
                seed=seed,
                stopping_criteria=criteria,
                **(params | {"max_tokens": max_tokens}),
            )
            if cancelled.is_set():
                raise DecodeCancelled
            choice = reply["choices"][0]
            return choice["text"], choice.get("finish_reason"), reply["usage"]["completion_tokens"]

        if request.seed is not None:
            llama.reset()  # a seeded request reproduces: no prefix cache from an earlier request
        try:
            reply = think_then_answer(
                tokens,
                budget=budget,
                limit=limit,
                n_ctx=n_ctx,
                prompt_opens_thinking=opened,
                tokenize=tokenize,
                sample=sample,
                template_stop=template_stop,
                answer_stop=request.stop or (),
            )
        except NoRoomToThink as exc:
            raise BackendError(f"{name}: {exc}") from exc
        choices.append(Choice(text=reply.text, reasoning=reply.reasoning or None, finish_reason=reply.finish_reason))
        completion += reply.completion_tokens
        reasoning += reply.reasoning_tokens
    return choices, Usage(prompt_tokens=len(tokens), completion_tokens=completion, reasoning_tokens=reasoning)
