"""Instruction-following checks in the style of IFEval: all lowercase, no commas, ends with a given word,
a keyword at least (or exactly) N times, a regular expression.

Each checks the reply's subject (see :func:`thinkloop.verifiers.words.reply_subject`) and says exactly what is
wrong, so a reviser can fix it. Compose them with :class:`~thinkloop.verifiers.AllOf`: every complaint
reaches the model at once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.words import _WORD, reply_subject

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate


class Lowercase:
    """No capital letter anywhere in the subject."""

    def __repr__(self) -> str:
        return "Lowercase()"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        subject = reply_subject(candidate.text)
        capitals = [w for w in _WORD.findall(subject) if any(c.isupper() for c in w)]
        if not capitals:
            return Verdict.accept()
        shown = ", ".join(repr(w) for w in capitals[:5])
        return Verdict.reject(f"Use only lowercase letters; these words have capitals: {shown}.")


class NoCommas:
    """Not a single comma in the subject."""

    def __repr__(self) -> str:
        return "NoCommas()"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        count = reply_subject(candidate.text).count(",")
        if count == 0:
            return Verdict.accept()
        return Verdict.reject(f"Do not use commas; you used {count}.")


class EndsWith:
    """The subject's last word is ``word`` (case-insensitive; trailing punctuation allowed)."""

    def __init__(self, word: str) -> None:
        words = _WORD.findall(word)
        if len(words) != 1:
            raise ConfigurationError(f"EndsWith needs one word, got {word!r}")
        self.word = words[0]

    def __repr__(self) -> str:
        return f"EndsWith({self.word!r})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        words = _WORD.findall(reply_subject(candidate.text))
        last = words[-1] if words else None
        if last is not None and last.lower() == self.word.lower():
            return Verdict.accept()
        ending = f"it ends with {last!r}" if last else "it is empty"
        return Verdict.reject(f"The reply must end with the word {self.word!r}; {ending}.")


class KeywordCount:
    """``keyword`` appears as a whole word at least (or exactly) ``times`` times, case-insensitively."""

    def __init__(self, keyword: str, times: int = 1, *, mode: Literal["at_least", "exactly"] = "at_least") -> None:
        if not keyword.strip() or times < 0:
            raise ConfigurationError(f"KeywordCount needs a keyword and times >= 0 (got {keyword!r}, {times})")
        self.keyword = keyword.strip()
        self.times = times
        self.mode = mode
        self._pattern = re.compile(rf"(?<![^\W_]){re.escape(self.keyword)}(?![^\W_])", re.IGNORECASE)

    def __repr__(self) -> str:
        return f"KeywordCount({self.keyword!r}, {self.times}, mode={self.mode!r})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        found = len(self._pattern.findall(reply_subject(candidate.text)))
        ok = found == self.times if self.mode == "exactly" else found >= self.times
        if ok:
            return Verdict.accept()
        need = "exactly" if self.mode == "exactly" else "at least"
        return Verdict.reject(
            f"Use the word {self.keyword!r} {need} {self.times} time{'s' * (self.times != 1)}; you used it {found}.",
            score=min(found, self.times) / self.times if self.times else 0.0,
        )


class Matches:
    """The subject matches a regular expression (searched, or matched whole with ``fullmatch=True``)."""

    def __init__(self, pattern: str, *, fullmatch: bool = False, flags: int = 0) -> None:
        try:
            self.pattern = re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigurationError(f"invalid regular expression {pattern!r}: {exc}") from exc
        self.fullmatch = fullmatch

    def __repr__(self) -> str:
        return f"Matches({self.pattern.pattern!r}, fullmatch={self.fullmatch})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        subject = reply_subject(candidate.text)
        match = self.pattern.fullmatch(subject) if self.fullmatch else self.pattern.search(subject)
        if match is not None:
            return Verdict.accept()
        how = "match" if self.fullmatch else "contain a match for"
        return Verdict.reject(f"The answer must {how} the pattern {self.pattern.pattern!r}; it was {subject[:80]!r}.")
