"""How sure a model was of a reply, read off its token log-probabilities (DeepConf's measures).

DeepConf (Fu et al., 2025) scores each generated token by how peaked the model's distribution was there:
the *token confidence* is minus the mean log-probability of the ``k`` most likely tokens at that position
(a sure token has one likely choice and ``k - 1`` very unlikely ones, so the mean is very negative and the
confidence high). A reply without alternatives (the server sent only the chosen token's log-probability)
falls back to that token's probability, which orders replies the same way on a different scale; a run mixes
the two never, since every reply of a run comes from one kind of request.

Over a reply:

- ``mean``: the mean token confidence (the paper's *average trace confidence*);
- ``lowest_group``: the lowest mean over any ``window`` consecutive tokens (*lowest group confidence*:
  one stretch of confusion marks the whole trace);
- ``bottom10``: the mean of the lowest 10% of those window means (*bottom-10% group confidence*);
- ``tail``: the mean over the last ``tail`` tokens, where the answer is written (*tail confidence*).

Higher is surer for every measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from thinkloop.types import Choice, TokenLogprob

Measure = Literal["mean", "lowest_group", "bottom10", "tail"]


def token_confidence(token: TokenLogprob) -> float:
    """DeepConf's ``-mean(log p)`` over the top alternatives when there are two or more, else ``p`` itself."""
    top = token.top_logprobs
    if top and len(top) >= 2:
        return -math.fsum(t.logprob for t in top) / len(top)
    return math.exp(token.logprob)


def token_confidences(choice: Choice) -> list[float] | None:
    """Each generated token's confidence; ``None`` when the reply carries no log-probabilities."""
    if not choice.logprobs:
        return None
    return [token_confidence(t) for t in choice.logprobs]


def group_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """The mean confidence of every ``window`` consecutive tokens (one group when the reply is shorter)."""
    if not confidences:
        return []
    width = min(window, len(confidences))
    total = math.fsum(confidences[:width])
    means = [total / width]
    for index in range(width, len(confidences)):
        total += confidences[index] - confidences[index - width]
        means.append(total / width)
    return means


def measure(confidences: Sequence[float], how: Measure, *, window: int = 64, tail: int = 64) -> float:
    """One number for a reply's confidence (see the module for the measures)."""
    if not confidences:
        raise ValueError("a confidence measure needs at least one token")
    if how == "mean":
        return math.fsum(confidences) / len(confidences)
    if how == "tail":
        last = confidences[-tail:]
        return math.fsum(last) / len(last)
    groups = group_confidences(confidences, window)
    if how == "lowest_group":
        return min(groups)
    lowest = sorted(groups)[: max(1, math.ceil(len(groups) * 0.1))]
    return math.fsum(lowest) / len(lowest)


def percentile(values: Sequence[float], percent: float) -> float:
    """The ``percent``-th percentile of ``values`` (linear between ranks, as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("a percentile of nothing")
    rank = (len(ordered) - 1) * percent / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
