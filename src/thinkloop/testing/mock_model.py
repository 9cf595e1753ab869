"""The mock model: what the mock OpenAI-compatible server answers, with a known answer distribution.

The answers are arithmetic: the model looks for ``A + B`` in the last user message (anything else gets a right
answer derived from a hash of the message). Each choice ends ``The answer is X.``; X is right with probability
``p_right`` and otherwise ``right ± d`` with ``d`` drawn uniformly from ``1..distractors/2`` (so wrong answers
rarely agree with each other). Which answer a choice gets depends only on the question and the choice's
position among all choices served for that question (a per-question counter), so one request with ``n=8`` and
eight requests with ``n=1`` draw exactly the same eight answers, in any arrival order, and runs reproduce.
The HTTP side is :mod:`thinkloop.testing.mock_server`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from math import comb, factorial
from typing import Any

_SUM = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)")
_FILLER_TEXT = (
    "Let me work through this carefully, adding the numbers column by column and carrying where needed "
    "before I check the total once more."
)
_FILLER = tuple(_FILLER_TEXT.split())


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """How the mock answers.

    Args:
        latency: seconds every chat request waits before its answer (all requests overlap).
        p_right: probability that a choice carries the right answer.
        distractors: how many different wrong answers there are (``right ± 1..distractors/2``).
        max_choices: the most choices one request returns; ``1`` imitates llama.cpp's server, which ignores
            ``n`` (``None``: honour ``n`` fully).
        filler_words: words of "reasoning" before the final sentence, so replies have a realistic size.
        model: the model name reported in responses and ``/v1/models``.
        seed: changes every answer; the same seed reproduces a run.
    """

    latency: float = 0.0
    p_right: float = 0.6
    distractors: int = 50
    max_choices: int | None = None
    filler_words: int = 24
    model: str = "mock"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, got {self.latency}")
        if not 0.0 <= self.p_right <= 1.0:
            raise ValueError(f"p_right must be in [0, 1], got {self.p_right}")
        if self.distractors < 2 or self.distractors % 2:
            raise ValueError(f"distractors must be even and >= 2, got {self.distractors}")
        if self.max_choices is not None and self.max_choices < 1:
            raise ValueError(f"max_choices must be >= 1 or None, got {self.max_choices}")


@dataclass
class MockStats:
    """Counters since the last reset."""

    requests: int = 0
    """Chat completion requests answered (errors excluded)."""
    choices: int = 0
    requests_by_n: dict[int, int] = field(default_factory=dict)
    """Requests by the ``n`` they asked for (1 when absent)."""
    in_flight: int = 0
    max_in_flight: int = 0
    """The most chat requests between "request read" and "response written" at one time."""
    errors: int = 0
    connections: int = 0
    """TCP connections accepted (a keep-alive client opens few)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requests_by_n"] = {str(k): v for k, v in sorted(self.requests_by_n.items())}
        return data


def question_key(text: str) -> str:
    """What identifies a question inside a prompt: its last ``A + B``, else the whole text.

    Strategies wrap a question in their own templates; keying on the sum keeps the answers the same for
    every client that asks the same sum.
    """
    matches = _SUM.findall(text)
    if matches:
        a, b = matches[-1]
        return f"{int(a)}+{int(b)}"
    return text.strip()


def right_answer(text: str) -> int:
    """The answer the mock treats as right for a prompt (``A + B`` when present)."""
    matches = _SUM.findall(text)
    if matches:
        a, b = matches[-1]
        return int(a) + int(b)
    return _hash(text.strip(), "answer") % 1000


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def vote_right_probability(n: int, *, p_right: float = 0.6, distractors: int = 50) -> float:
    """The chance that a plurality vote over ``n`` of the mock's answers picks the right one, ties split evenly.

    Exact: wrong answers spread uniformly over ``distractors`` values, so for each count ``r`` of right answers
    it counts the ways the ``n - r`` wrong ones stay below ``r`` in every value, or tie at ``r`` in ``t`` of them.
    """
    q = (1.0 - p_right) / distractors
    total = 0.0
    for r in range(1, n + 1):
        k = n - r
        p_r = comb(n, r) * p_right**r * q**k  # times the number of ways to place the k wrong answers
        # Exponential generating function of one value's count: sum_{j < r} x^j / j!
        below = [1.0 / factorial(j) if j < r else 0.0 for j in range(k + 1)]
        for t in range(0, min(distractors, k // r if r else 0) + 1):
            poly = [1.0] + [0.0] * k
            for _ in range(distractors - t):
                poly = _poly_mul(poly, below, k)
            tied = [0.0] * (k + 1)
            if r * t <= k:
                tied[r * t] = 1.0 / factorial(r) ** t
            poly = _poly_mul(poly, tied, k)
            ways = comb(distractors, t) * poly[k] * factorial(k)
            total += p_r * ways / (t + 1)
    return total


def _poly_mul(a: Sequence[float], b: Sequence[float], degree: int) -> list[float]:
    out = [0.0] * (degree + 1)
    for i, x in enumerate(a):
        if x:
            for j in range(degree + 1 - i):
                out[i + j] += x * b[j]
    return out


class MockModel:
    """The answer logic, apart from HTTP, so tests can check the distribution directly."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.stats = MockStats()
        self._served: dict[str, int] = {}
        self._ids = 0
        words = self.config.filler_words
        self._filler = " ".join((_FILLER * (words // len(_FILLER) + 1))[:words])

    def reset(self) -> None:
        """Clear the counters and the per-question positions (the next run draws the same answers again)."""
        in_flight = self.stats.in_flight
        self.stats = MockStats(in_flight=in_flight, max_in_flight=in_flight)
        self._served.clear()

    def answer(self, key: str, right: int, position: int) -> int:
        """The answer of the ``position``-th choice served for a question."""
        config = self.config
        h = _hash(config.seed, key, position)
        if (h & 0xFFFFFFFF) / 2**32 < config.p_right:
            return right
        half = config.distractors // 2
        offset = (h >> 32) % config.distractors
        return right + (offset + 1 if offset < half else -(offset - half + 1))

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion response for a request body; raises ``ValueError`` on a bad request."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        if body.get("stream"):
            raise ValueError("the mock server does not stream")
        n = body.get("n")
        n = 1 if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"'n' must be a positive integer, got {n!r}")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        prompt = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                prompt = str(message.get("content") or "")
                break
        key, right = question_key(prompt), right_answer(prompt)
        count = n if self.config.max_choices is None else min(n, self.config.max_choices)
        start = self._served.get(key, 0)
        self._served[key] = start + count
        choices = []
        completion_tokens = 0
        for index in range(count):
            value = self.answer(key, right, start + index)
            words = f"{self._filler} The answer is {value}.".split()
            finish = "stop"
            if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
                words, finish = words[:max_tokens], "length"
            completion_tokens += len(words)
            choice: dict[str, Any] = {
                "index": index,
                "message": {"role": "assistant", "content": " ".join(words)},
                "finish_reason": finish,
                "logprobs": None,
            }
            if body.get("logprobs"):
                logprob = -0.2 if value == right else -0.6
                choice["logprobs"] = {
                    "content": [{"token": w, "logprob": logprob, "bytes": None, "top_logprobs": []} for w in words]
                }
            choices.append(choice)
        prompt_tokens = sum(len(str(m.get("content") or "").split()) + 4 for m in messages if isinstance(m, dict))
        stats = self.stats
        stats.requests += 1
        stats.choices += count
        stats.requests_by_n[n] = stats.requests_by_n.get(n, 0) + 1
        stats.prompt_tokens += prompt_tokens
        stats.completion_tokens += completion_tokens
        self._ids += 1
        return {
            "id": f"chatcmpl-mock-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.config.model, "object": "model", "created": 0, "owned_by": "thinkloop"}],
        }
