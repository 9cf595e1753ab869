"""A simulated model with a known accuracy, for honest scaling curves.

The embedded model is too weak for self-consistency curves to mean anything, and a real API costs money and
changes under you. :class:`SimulatedBackend` answers each sample correctly with probability ``p`` and
otherwise draws a wrong answer from a known spread, so the accuracy of a majority vote over ``k`` samples
is known in closed form (:func:`majority_vote_accuracy`): a benchmark on it checks the runner, the vote and
the report end to end.

Real data sets mix easy and hard questions, and that is where spending per question pays: give ``spreads``
(question -> :class:`Spread`, e.g. from :func:`mixed_spreads`) and each question draws from its own.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from thinkloop.backends.base import BaseBackend, Capabilities
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.verdict import Verdict
from thinkloop.types import ChatRequest, Choice, Completion, Usage

if TYPE_CHECKING:
    from thinkloop.bench.report import ConfigSummary

DEFAULT_WRONG: tuple[tuple[int, float], ...] = ((-1, 0.5), (1, 0.3), (2, 0.2))
"""Wrong answers as (offset from the gold number, relative weight): off by one either way, or by two."""


@dataclass(frozen=True)
class Spread:
    """The answer distribution of one sample: ``p`` right, else ``gold + offset`` with the given weights."""

    p: float
    wrong: tuple[tuple[int, float], ...] = DEFAULT_WRONG

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        if any(offset == 0 or weight <= 0 for offset, weight in self.wrong) or not self.wrong:
            raise ValueError("wrong answers need non-zero offsets and positive weights")

    def probabilities(self) -> dict[int, float]:
        """Offset -> probability; offset 0 is the right answer."""
        total = math.fsum(w for _, w in self.wrong)
        probs = {0: self.p}
        for offset, weight in self.wrong:
            probs[offset] = probs.get(offset, 0.0) + (1.0 - self.p) * weight / total
        return probs


WIDE_WRONG: tuple[tuple[int, float], ...] = ((-2, 1.0), (-1, 1.0), (1, 1.0), (2, 1.0), (3, 1.0))
"""A hard question's wrong answers: five, equally likely, so no single wrong answer dominates a vote."""

MIXED_TIERS: tuple[tuple[float, Spread], ...] = ((0.75, Spread(p=0.9)), (0.25, Spread(p=0.3, wrong=WIDE_WRONG)))
"""Most questions easy (right 90% of the time), a quarter hard (right 30%, five wrong answers at 14% each)."""


def mixed_spreads(
    questions: Sequence[str], tiers: Sequence[tuple[float, Spread]] = MIXED_TIERS, *, seed: int = 0
) -> dict[str, Spread]:
    """Each question's :class:`Spread`: tier ``i`` gets ``round(share * len)`` questions (the last tier the
    rest), which ones decided by ``seed``: the same seed always gives the same mix."""
    if not tiers or any(share < 0 for share, _ in tiers):
        raise ValueError("tiers need non-negative shares")
    order = list(questions)
    random.Random(seed).shuffle(order)
    spreads: dict[str, Spread] = {}
    start = 0
    for index, (share, spread) in enumerate(tiers):
        end = len(order) if index == len(tiers) - 1 else min(len(order), start + round(share * len(order)))
        spreads.update((question, spread) for question in order[start:end])
        start = end
    return spreads


def simulated_dataset(size: int, *, name: str = "simulated") -> Dataset:
    """``size`` problems whose gold answers are three-digit numbers (200..799), so every answer the spread
    can produce has three digits and sorts as text the way it sorts as a number."""
    problems = tuple(
        Problem(
            id=f"s{i:04d}",
            question=f"Simulated problem {i}: what is the value of item {i}?",
            answer=str(200 + (i * 37) % 600),
            line=i + 1,
        )
        for i in range(size)
    )
    return Dataset(name=name, path=Path(f"<{name}>"), problems=problems)


def _table(spread: Spread) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """A spread's offsets and their weights, in order of offset (for ``random.choices``)."""
    pairs = sorted(spread.probabilities().items())
    return tuple(o for o, _ in pairs), tuple(w for _, w in pairs)


class SimulatedBackend(BaseBackend):
    """A backend whose samples are right with probability ``p``.

    Deterministic: each sample's draw is seeded by the seed, the question and how many times that same
    request was asked before, so a benchmark re-run reproduces it.

    Args:
        gold: question text -> gold answer (a number); a question not in it gets a reply with no answer.
        spread: the answer distribution (or give ``p`` for the default wrong-answer spread).
        seed: the seed for every draw.
        latency: seconds to sleep per call (to make crash tests slow enough to interrupt).
        name: the model name (default ``simulated(p=P)``; reports read ``p`` back from it to draw the
            closed-form curve; ``simulated(mixed)`` with ``spreads``).
        spreads: question -> its own :class:`Spread` (questions not in it use ``spread``): a mix of easy
            and hard questions.
        reply_words: pad every reply to about this many words of reasoning, so token counts look like a
            model that thinks before it answers (default: a one-line reply).
    """

    def __init__(
        self,
        gold: Mapping[str, str],
        *,
        p: float | None = None,
        spread: Spread | None = None,
        seed: int = 0,
        latency: float = 0.0,
        name: str | None = None,
        spreads: Mapping[str, Spread] | None = None,
        reply_words: int = 0,
    ) -> None:
        if spread is None:
            spread = Spread(p=0.6 if p is None else p)
        if name is None and spreads:
            name = "simulated(mixed)"
        elif name is None:
            default = spread.wrong == DEFAULT_WRONG
            name = f"simulated(p={spread.p:g})" if default else f"simulated(p={spread.p:g},custom)"
        if reply_words < 0:
            raise ValueError(f"reply_words must be >= 0, got {reply_words}")
        self.spreads = dict(spreads or {})
        self.reply_words = reply_words
        self._tables: dict[Spread, tuple[tuple[int, ...], tuple[float, ...]]] = {}
        self.gold = dict(gold)
        self.spread = spread
        self.seed = seed
        self.latency = latency
        self._name = name
        self._asked: dict[str, int] = {}
        self._offsets, self._weights = _table(spread)
        self.calls = 0

    @classmethod
    def for_dataset(cls, dataset: Dataset, **options: Any) -> SimulatedBackend:
        return cls({p.question: p.answer for p in dataset.problems}, **options)

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(honours_n=True, prompt_overhead_tokens=0)

    def _question(self, request: ChatRequest) -> str | None:
        for message in request.messages:
            if message.role == "user":
                if message.content in self.gold:
                    return message.content
                for question in self.gold:
                    if question in message.content:
                        return question
        return None

    def _rng(self, request: ChatRequest) -> random.Random:
        key = "\x1f".join(m.content for m in request.messages)
        count = self._asked.get(key, 0)
        self._asked[key] = count + 1
        digest = hashlib.sha256(f"{self.seed}\x1e{count}\x1e{key}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def draw(self, rng: random.Random, gold: str, spread: Spread | None = None) -> str:
        """The right answer, or ``gold + offset`` (a gold that is not a number gets a labelled wrong one)."""
        if spread is None or spread == self.spread:
            offsets, weights = self._offsets, self._weights
        else:
            if spread not in self._tables:
                self._tables[spread] = _table(spread)
            offsets, weights = self._tables[spread]
        offset = rng.choices(offsets, weights=weights)[0]
        if offset == 0:
            return gold
        try:
            value = Decimal(gold.replace(",", ""))
        except InvalidOperation:
            return f"{gold} {offset:+d}"
        return str(value + offset)

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        if self.latency:
            await anyio.sleep(self.latency)
        rng = self._rng(request)
        question = self._question(request)
        choices = []
        spread = self.spreads.get(question) if question is not None else None
        filler = " ".join(["step"] * self.reply_words) + " " if self.reply_words else ""
        for _ in range(request.n):
            if question is None:
                text = "I cannot tell."
            else:
                text = f"Let me work it out. {filler}The answer is {self.draw(rng, self.gold[question], spread)}."
            words = text.split()
            if request.max_tokens is not None and len(words) > request.max_tokens:  # a word is a token here
                choices.append(Choice(text=" ".join(words[: request.max_tokens]), finish_reason="length"))
                continue
            choices.append(Choice(text=text, finish_reason="stop"))
        prompt = sum(len(m.content.encode()) for m in request.messages) // 4 + 1
        completion = sum(len(c.text.split()) for c in choices)
        return Completion(
            choices=tuple(choices),
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
            latency_s=self.latency,
            model=self._name,
        )


class SimulatedVerifier:
    """A checker with known error rates: accepts a right answer with probability ``recall`` and a wrong one
    with probability ``false_accept``. Like a program check, its verdict on one answer to one question is
    always the same (drawn once from ``seed``, the question and the answer).

    Args:
        gold: question text -> gold answer (the backend's ``gold``).
    """

    def __init__(
        self, gold: Mapping[str, str], *, recall: float = 0.95, false_accept: float = 0.05, seed: int = 0
    ) -> None:
        if not (0.0 <= recall <= 1.0 and 0.0 <= false_accept <= 1.0):
            raise ValueError(f"recall and false_accept must be in [0, 1], got {recall} and {false_accept}")
        self.gold = dict(gold)
        self.recall = recall
        self.false_accept = false_accept
        self.seed = seed
        self.calls = 0

    async def verify(self, question: str, candidate: Candidate, ctx: object = None) -> Verdict:
        from thinkloop.verifiers.equivalence import answers_equivalent

        self.calls += 1
        gold = self.gold.get(str(question))
        answer = candidate.answer
        if gold is None or answer is None:
            return Verdict.reject("no answer to check")
        digest = hashlib.sha256(f"{self.seed}\x1e{question}\x1e{answer}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        right = answers_equivalent(answer, gold)
        if draw < (self.recall if right else self.false_accept):
            return Verdict.accept()
        return Verdict.reject(f"{answer} does not check out")


def majority_vote_accuracy(k: int, spread: Spread) -> float:
    """The exact probability that a plurality vote over ``k`` samples picks the right answer.

    Ties break as :func:`thinkloop.strategies.vote.majority_vote` breaks them with equal weights: toward the
    smallest answer text, which for the simulated answers (all three digits) is the smallest offset.
    """
    probs = spread.probabilities()
    offsets = sorted(probs)
    total = 0.0
    for counts in _compositions(k, len(offsets)):
        top = max(counts)
        winner = min(o for o, c in zip(offsets, counts, strict=True) if c == top)
        if winner != 0:
            continue
        ways = math.factorial(k)
        chance = 1.0
        for offset, c in zip(offsets, counts, strict=True):
            ways //= math.factorial(c)
            chance *= probs[offset] ** c
        total += ways * chance
    return total


def _compositions(k: int, parts: int) -> Sequence[tuple[int, ...]]:
    """Every way to write ``k`` as an ordered sum of ``parts`` non-negative integers."""
    result = []
    for bars in itertools.combinations(range(k + parts - 1), parts - 1):
        edges = (-1, *bars, k + parts - 1)
        result.append(tuple(edges[i + 1] - edges[i] - 1 for i in range(parts)))
    return result


_SIMULATED_NAME = re.compile(r"^simulated\(p=([0-9.]+)\)$")


def spread_of(model: str) -> Spread | None:
    """The default-spread :class:`Spread` a simulated model's name stands for (``None`` for other models)."""
    match = _SIMULATED_NAME.match(model)
    return Spread(p=float(match.group(1))) if match else None


def closed_form_table(summaries: Sequence[ConfigSummary]) -> str:
    """Markdown: each self-consistency config on a default-spread simulated model against its closed form
    (the table ``benchmarks/README.md`` shows, regenerated from a results file so the two cannot drift)."""
    header = (
        "strategy",
        "n",
        "samples per question",
        "closed-form accuracy",
        "measured accuracy (95% CI)",
        "inside CI",
        "pass@k measured",
        "pass@k closed form 1−(1−p)^n",
        "tokens/q",
        "calls/q",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for s in summaries:
        spread = spread_of(s.model)
        name = s.spec.partition(":")[0]
        if spread is None or name != "sc" or s.accuracy is None:
            continue
        from thinkloop.strategies.registry import build_strategy
        from thinkloop.strategies.self_consistency import SelfConsistencyConfig

        config = build_strategy(s.spec).config
        if not isinstance(config, SelfConsistencyConfig):
            continue
        k, adaptive = config.n, config.adaptive
        measured = f"{100 * s.accuracy:.1f}% [{100 * (s.ci_low or 0):.1f}, {100 * (s.ci_high or 0):.1f}]"
        if adaptive:
            expected = inside = any_right = "—"
        else:
            exact = majority_vote_accuracy(k, spread)
            expected = f"{100 * exact:.1f}%"
            inside = "yes" if (s.ci_low or 0) <= exact <= (s.ci_high or 0) else "no"
            any_right = f"{100 * (1 - (1 - spread.p) ** k):.1f}%"
        samples = f"{s.mean_k:.1f}" if s.mean_k is not None else str(k)
        pass_k = "n/a" if s.pass_at_k is None else f"{100 * s.pass_at_k:.1f}%"
        lines.append(
            "| "
            + " | ".join(
                (
                    s.strategy,
                    str(s.n),
                    samples,
                    expected,
                    measured,
                    inside,
                    pass_k,
                    any_right,
                    f"{s.mean_tokens:.0f}",
                    f"{s.mean_calls:.1f}",
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"
