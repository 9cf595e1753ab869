"""Majority voting over answers grouped by equivalence, independent of the order the samples arrived in.

Answers are first grouped by their normalised text, then groups whose representatives are equivalent
(``14`` and ``14.0``, ``\\frac{1}{2}`` and ``0.5``) are merged as connected components over *all* pairs
(a union-find), so the grouping does not depend on which sample came first. Ties break deterministically:
higher total weight, then more votes, then the smallest representative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from thinkloop.runtime.result import Candidate

Equivalence = Callable[[str, str], bool]


def _default_equivalent(a: str, b: str) -> bool:
    from thinkloop.verifiers.extract import answers_equivalent

    return answers_equivalent(a, b)


def exact_equivalent(a: str, b: str) -> bool:
    return a == b


@dataclass(frozen=True)
class VoteGroup:
    representative: str
    votes: int
    weight: float
    members: tuple[Candidate, ...] = field(repr=False)

    def best_member(self) -> Candidate:
        """The member to show: highest score, then the shortest, then alphabetical text (order-free)."""
        return min(self.members, key=lambda c: (-(c.score or 0.0), len(c.text), c.text))


@dataclass(frozen=True)
class VoteResult:
    groups: tuple[VoteGroup, ...]
    """Best first."""
    unanswered: int
    """Samples with no extractable answer (they cast no vote)."""

    @property
    def winner(self) -> VoteGroup | None:
        return self.groups[0] if self.groups else None

    @property
    def votes(self) -> int:
        return sum(g.votes for g in self.groups)

    def counts(self) -> dict[str, int]:
        return {g.representative: g.votes for g in self.groups}

    def weights(self) -> dict[str, float]:
        return {g.representative: g.weight for g in self.groups}


def _normal(answer: str) -> str:
    from thinkloop.verifiers.extract import normalize_answer

    normalised = normalize_answer(answer)
    return normalised if normalised else answer.strip() or answer


def majority_vote(
    candidates: Sequence[Candidate],
    *,
    weight: Callable[[Candidate], float] | None = None,
    equivalent: Equivalence | None = None,
) -> VoteResult:
    """Group candidates' answers and rank the groups. ``weight`` defaults to one vote each."""
    equivalent = equivalent or _default_equivalent
    buckets: dict[str, list[Candidate]] = {}
    unanswered = 0
    for candidate in candidates:
        if candidate.answer is None:
            unanswered += 1
            continue
        buckets.setdefault(_normal(candidate.answer), []).append(candidate)
    keys = sorted(buckets)
    root = {key: key for key in keys}  # union-find over equivalent keys

    def find(key: str) -> str:
        while root[key] != key:
            root[key] = root[root[key]]
            key = root[key]
        return key

    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if find(a) != find(b) and equivalent(a, b):
                root[max(find(a), find(b))] = min(find(a), find(b))
    components: dict[str, list[str]] = {}
    for key in keys:
        components.setdefault(find(key), []).append(key)
    groups = []
    for component in components.values():
        members = tuple(c for key in sorted(component) for c in buckets[key])
        total = math.fsum(weight(c) if weight else 1.0 for c in members)
        groups.append(VoteGroup(representative=min(component), votes=len(members), weight=total, members=members))
    groups.sort(key=lambda g: (-round(g.weight, 12), -g.votes, g.representative))
    return VoteResult(groups=tuple(groups), unanswered=unanswered)


def leader_is_safe(result: VoteResult, remaining: int) -> bool:
    """True when the leader cannot be overtaken (or tied) by the ``remaining`` unweighted votes."""
    if not result.groups:
        return False
    runner_up = result.groups[1].votes if len(result.groups) > 1 else 0
    return result.groups[0].votes - runner_up > remaining


def beta_confidence(result: VoteResult) -> float:
    """P(the leader's true share beats the runner-up's) under a uniform Beta prior (Adaptive-Consistency).

    With integer counts ``v1`` and ``v2``, ``P(p > 1/2)`` for ``p ~ Beta(v1 + 1, v2 + 1)`` equals
    ``P(Binomial(v1 + v2 + 1, 1/2) <= v1)``, computed exactly.
    """
    if not result.groups:
        return 0.0
    v1 = result.groups[0].votes
    v2 = result.groups[1].votes if len(result.groups) > 1 else 0
    trials = v1 + v2 + 1
    return math.fsum(math.comb(trials, i) for i in range(v1 + 1)) / 2**trials
