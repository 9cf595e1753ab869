"""Majority voting over answers grouped by equivalence, independent of the order the samples arrived in.

Each distinct answer is canonicalised once (:func:`~thinkloop.verifiers.equivalence.canonical_key`: numbers
by exact value, words by text, expressions by ``math-verify``'s parse) and answers with the same key form one
group, with no pairwise comparison. Only groups holding an expression are compared with ``math-verify``, and
each joins the first larger group whose *leader* it is equivalent to: never a chain (``1000000`` and
``1000001`` do not merge through ``1000000.5``). Groups are visited heaviest first, so the grouping depends on
the answers, not on their arrival. Every slow step stops at the ``deadline`` (the run's time budget); groups
left uncompared stay apart and :attr:`VoteResult.unresolved` counts them. Ties break deterministically:
higher total weight, then more votes, then the smallest representative.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from thinkloop.runtime.result import Candidate
from thinkloop.verifiers.equivalence import AnswerKey, answers_equivalent, canonical_key, needs_comparison
from thinkloop.verifiers.normalize import normalize_answer

Equivalence = Callable[[str, str], bool]


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
    unresolved: int = 0
    """Comparisons the deadline left undone (those groups stay apart)."""

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


# What a model writes around the value it votes for: "actually 42", "0*(-3), which equals 0 because ...".
_FILLER = re.compile(r"^(?:actually|so|thus|therefore|then|hence|finally|really|just)\b[\s,:]*", re.IGNORECASE)
_STATED_VALUE = re.compile(
    r"\b(?:which|that|this|it)\s+(?:equals|is equal to|is|gives|makes|comes to)\s+"
    r"(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)(?![\w.]*\d)",
    re.IGNORECASE,
)


def vote_form(answer: str) -> str:
    """The value an answer states, for voting: leading filler dropped ("actually 42" is 42) and a worked
    expression replaced by the number it says it equals ("0*(-3), which equals 0 because ..." is 0)."""
    text = answer.strip()
    while (found := _FILLER.match(text)) and found.end() < len(text):
        text = text[found.end() :]
    stated = _STATED_VALUE.search(text)
    if stated is not None:
        text = stated.group(1)
    return text


def _normal(answer: str) -> str:
    answer = vote_form(answer)
    normalised = normalize_answer(answer)
    return normalised if normalised else answer.strip() or answer


@dataclass
class _Bucket:
    forms: set[str] = field(default_factory=set)
    members: list[Candidate] = field(default_factory=list)
    weight: float = 0.0

    @property
    def representative(self) -> str:
        return min(self.forms)

    def order(self) -> tuple[float, int, str]:
        return (-round(self.weight, 12), -len(self.members), self.representative)


def majority_vote(
    candidates: Sequence[Candidate],
    *,
    weight: Callable[[Candidate], float] | None = None,
    equivalent: Equivalence | None = None,
    deadline: float | None = None,
) -> VoteResult:
    """Group candidates' answers and rank the groups. ``weight`` defaults to one vote each.

    Args:
        equivalent: a custom equivalence of two normalised answers (``None``: math-aware, see the module).
        deadline: a :func:`time.monotonic` instant after which no slow comparison starts (``None``: none).
    """
    keys: dict[str, AnswerKey] = {}  # normalised form -> key, computed once per distinct form
    buckets: dict[AnswerKey, _Bucket] = {}
    unanswered = 0
    for candidate in candidates:
        if candidate.answer is None:
            unanswered += 1
            continue
        form = _normal(candidate.answer)
        key = keys.get(form)
        if key is None:
            key = keys[form] = ("text", form) if equivalent else canonical_key(form, deadline=deadline)
        bucket = buckets.setdefault(key, _Bucket())
        bucket.forms.add(form)
        bucket.members.append(candidate)
        bucket.weight += weight(candidate) if weight else 1.0
    ordered = sorted(buckets.items(), key=lambda item: item[1].order())
    clusters: list[tuple[AnswerKey, _Bucket, list[_Bucket]]] = []  # (leader's key, leader, members)
    unresolved = 0
    for key, bucket in ordered:
        home = None
        for leader_key, leader, members in clusters:
            if equivalent is None and not needs_comparison(key, leader_key):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                unresolved += 1
                continue
            a, b = bucket.representative, leader.representative
            same = equivalent(a, b) if equivalent else answers_equivalent(a, b, deadline=deadline)
            if same:
                home = members
                break
        if home is None:
            clusters.append((key, bucket, [bucket]))
        else:
            home.append(bucket)
    groups = []
    for _, _, members in clusters:
        chosen = tuple(c for b in sorted(members, key=lambda b: b.representative) for c in b.members)
        total = math.fsum(weight(c) if weight else 1.0 for c in chosen)
        representative = min(b.representative for b in members)
        groups.append(VoteGroup(representative=representative, votes=len(chosen), weight=total, members=chosen))
    groups.sort(key=lambda g: (-round(g.weight, 12), -g.votes, g.representative))
    return VoteResult(groups=tuple(groups), unanswered=unanswered, unresolved=unresolved)


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
