"""Simulated models for the methods that read more than an answer: token confidences and step rewards.

:class:`ConfidentSimulatedBackend` is :class:`~thinkloop.bench.simulated.SimulatedBackend` whose replies
carry token log-probabilities correlated with correctness by a known amount: each trace draws a latent
confidence, ``N(right_mean, trace_sd)`` when its answer is right and ``N(wrong_mean, trace_sd)`` when wrong,
and each token's probability is that plus ``N(0, token_sd)`` noise (clipped to [0.02, 0.999]), with one
alternative taking the rest (``top_logprobs`` 2). It continues a reply given as a final assistant message
(the trace's answer and latent confidence are read back from the reply's first words), so DeepConf's online
mode can stop a trace after any piece.

:class:`SimulatedStepBackend` writes solutions of ``steps`` steps. Each step of a path that is still on track
derails with the question's probability ``derail`` (a derailed path stays derailed and ends with a wrong
answer drawn from the spread's wrong offsets); a path on track to the end states the gold answer. A request
with the blank-line stop string gets one step (the path so far is its final assistant message); any other
request gets a whole solution. :class:`SimulatedPRM` scores each step prefix like a process reward model of
known noise: ``sigmoid(±separation + N(0, noise))``, ``+`` while the path is on track.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from thinkloop.backends.base import Capabilities
from thinkloop.bench.simulated import SimulatedBackend, Spread
from thinkloop.types import ChatRequest, Choice, Completion, TokenLogprob, Usage

_TRACE = re.compile(r"^Trace (\d+) says (\S+?)\.")


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1e".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class ConfidentSimulatedBackend(SimulatedBackend):
    """A simulated model whose token confidences say, noisily, whether its answer is right."""

    def __init__(
        self,
        gold: Mapping[str, str],
        *,
        right_mean: float = 0.8,
        wrong_mean: float = 0.6,
        trace_sd: float = 0.1,
        token_sd: float = 0.15,
        **options: Any,
    ) -> None:
        options.setdefault("reply_words", 60)
        super().__init__(gold, **options)
        self.right_mean, self.wrong_mean = right_mean, wrong_mean
        self.trace_sd, self.token_sd = trace_sd, token_sd

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(honours_n=True, prompt_overhead_tokens=0, logprobs=True)

    def _words(self, trace: int, answer: str) -> list[str]:
        return [
            *f"Trace {trace} says {answer}.".split(),
            *(["step"] * self.reply_words),
            "The",
            "answer",
            "is",
            f"{answer}.",
        ]

    def _logprobs(self, trace: int, right: bool, start: int, count: int, want: bool) -> tuple[TokenLogprob, ...] | None:
        if not want:
            return None
        latent = _rng(self.seed, "latent", trace).gauss(self.right_mean if right else self.wrong_mean, self.trace_sd)
        tokens = []
        for index in range(start, start + count):
            p = min(0.999, max(0.02, latent + _rng(self.seed, "token", trace, index).gauss(0.0, self.token_sd)))
            top = (TokenLogprob(token="w", logprob=math.log(p)), TokenLogprob(token="alt", logprob=math.log(1 - p)))
            tokens.append(TokenLogprob(token="w", logprob=math.log(p), top_logprobs=top))
        return tuple(tokens)

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        rng = self._rng(request)
        question = self._question(request)
        last = request.messages[-1]
        so_far = last.content if last.role == "assistant" else ""
        choices = []
        for _ in range(request.n):
            if question is None:
                choices.append(Choice(text="I cannot tell.", finish_reason="stop"))
                continue
            gold = self.gold[question]
            known = _TRACE.match(so_far.strip())
            if known:
                trace, answer = int(known.group(1)), known.group(2)
            else:
                trace, answer = rng.getrandbits(48), self.draw(rng, gold, self.spreads.get(question))
            words = self._words(trace, answer)
            start = len(so_far.split())
            end = len(words) if request.max_tokens is None else min(len(words), start + request.max_tokens)
            piece = words[start:end]
            text = (" " if so_far else "") + " ".join(piece)
            choices.append(
                Choice(
                    text=text,
                    finish_reason="length" if end < len(words) else "stop",
                    logprobs=self._logprobs(trace, answer == gold, start, len(piece), request.logprobs),
                )
            )
        prompt = sum(len(m.content.encode()) for m in request.messages) // 4 + 1
        completion = sum(len(c.text.split()) for c in choices)
        return Completion(
            choices=tuple(choices), usage=Usage(prompt_tokens=prompt, completion_tokens=completion), model=self.name
        )


class SimulatedStepBackend(SimulatedBackend):
    """A simulated model that solves in ``steps`` steps, each of which may derail the solution."""

    def __init__(
        self,
        gold: Mapping[str, str],
        *,
        derail: Mapping[str, float],
        steps: int = 4,
        step_words: int = 20,
        **options: Any,
    ) -> None:
        super().__init__(gold, **options)
        self.derail = dict(derail)
        self.steps = steps
        self.step_words = step_words

    def _step(self, rng: random.Random, question: str, done: Sequence[str]) -> str:
        index = len(done) + 1
        derailed = any("slips" in s for s in done) or rng.random() < self.derail.get(question, 0.2)
        filler = " ".join(["work"] * self.step_words)
        if index < self.steps:
            return f"Step {index} {'slips' if derailed else 'holds'}: {filler}"
        gold = self.gold[question]
        spread = self.spreads.get(question, self.spread)
        answer = self.draw(rng, gold, Spread(p=0.0, wrong=spread.wrong)) if derailed else gold
        return f"Step {index} {'slips' if derailed else 'holds'}: {filler} Answer: {answer}"

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        rng = self._rng(request)
        question = self._question(request)
        stepwise = bool(request.stop) and "\n\n" in (request.stop or ())
        last = request.messages[-1]
        done = [s for s in last.content.split("\n\n") if s.strip()] if last.role == "assistant" else []
        choices = []
        for _ in range(request.n):
            if question is None:
                choices.append(Choice(text="I cannot tell.", finish_reason="stop"))
            elif stepwise:
                choices.append(Choice(text=self._step(rng, question, done), finish_reason="stop"))
            else:
                path = list(done)
                while len(path) < self.steps:
                    path.append(self._step(rng, question, path))
                choices.append(Choice(text="\n\n".join(path), finish_reason="stop"))
        prompt = sum(len(m.content.encode()) for m in request.messages) // 4 + 1
        completion = sum(len(c.text.split()) for c in choices)
        return Completion(
            choices=tuple(choices), usage=Usage(prompt_tokens=prompt, completion_tokens=completion), model=self.name
        )


class SimulatedPRM:
    """A process reward model of known noise: each prefix scores ``sigmoid(±separation + N(0, noise))``
    (``+`` while no step has slipped), drawn once per prefix from ``seed``."""

    def __init__(self, *, separation: float = 1.0, noise: float = 1.0, seed: int = 0) -> None:
        self.separation, self.noise, self.seed = separation, noise, seed
        self.calls = 0

    def step_reward(self, question: str, steps: Sequence[str]) -> float:
        on_track = not any("slips" in s for s in steps)
        draw = _rng(self.seed, question, *steps).gauss(0.0, self.noise)
        return 1 / (1 + math.exp(-((self.separation if on_track else -self.separation) + draw)))

    async def score_steps(
        self, question: str, steps: Sequence[str], ctx: Any = None, *, parent: Any = None
    ) -> list[float]:
        self.calls += 1
        return [self.step_reward(question, steps[: i + 1]) for i in range(len(steps))]

    def outcome_reward(self, question: str, candidate: Any) -> float:
        """The last step's reward of a whole solution: best-of-n's scorer (an outcome reward)."""
        steps = [s for s in candidate.text.split("\n\n") if s.strip()]
        return self.step_reward(question, steps) if steps else 0.0
