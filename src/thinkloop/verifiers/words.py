"""Count words, and tell the model how far off it was.

A model cannot see its own tokens as words, so "one sentence in exactly 12 words" is a coin toss for it; a
counter that says "you wrote 9 words, need 12: add 3" turns re-prompting into a search that converges.

What is checked is the reply's *subject*: the text after its last ``Answer:`` line when it has one (the
format thinkloop's strategies ask for), else the whole reply. Words are runs of letters and digits; an
apostrophe or hyphen inside a word keeps it one word ("don't", "well-known").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_ANSWER_LINE = re.compile(
    r"^[ \t>*_#-]*(?:final\s+)?answer\s*(?:\*\*|__)?\s*:\s*(?:\*\*|__)?(.*)$", re.IGNORECASE | re.MULTILINE
)
_QUOTES = "\"'“”‘’`*_"


def reply_subject(text: str) -> str:
    """What a format check looks at: the last ``Answer:`` line's text (or the line after a bare ``Answer:``),
    else the whole reply; surrounding quotes and emphasis are dropped."""
    matches = list(_ANSWER_LINE.finditer(text))
    subject = text
    for match in reversed(matches):
        rest = match.group(1).strip()
        if not rest:  # "Answer:" alone on its line: the subject is the next non-empty line
            following = text[match.end() :].strip().splitlines()
            rest = following[0].strip() if following else ""
        if rest:
            subject = rest
            break
    return subject.strip().strip(_QUOTES).strip()


def count_words(text: str) -> int:
    """Words in ``text``: runs of letters and digits, joined by an inner apostrophe or hyphen."""
    return len(_WORD.findall(text))


class WordCount:
    """Accepts a reply whose subject has exactly ``n`` words (or ``n ± tolerance``).

    The feedback names the count and the distance ("You wrote 9 words; it must be exactly 12: add 3 words."),
    and the score falls with the distance, so best-of-n keeps the nearest miss.
    """

    def __init__(self, n: int, *, tolerance: int = 0) -> None:
        if n < 1 or tolerance < 0:
            raise ConfigurationError(f"WordCount needs n >= 1 and tolerance >= 0 (got n={n}, tolerance={tolerance})")
        self.n = n
        self.tolerance = tolerance

    def __repr__(self) -> str:
        return f"WordCount({self.n}" + (f", tolerance={self.tolerance})" if self.tolerance else ")")

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        subject = reply_subject(candidate.text)
        got = count_words(subject)
        off = got - self.n
        if abs(off) <= self.tolerance:
            return Verdict.accept(f"{got} words, as required.")
        need = f"exactly {self.n}" if not self.tolerance else f"{self.n} ± {self.tolerance}"
        fix = f"remove {off} word{'s' * (off != 1)}" if off > 0 else f"add {-off} word{'s' * (off != -1)}"
        score = max(0.0, 1.0 - abs(off) / max(self.n, 1))
        return Verdict.reject(
            f"You wrote {got} words; it must be {need}: {fix}.",
            score=score,
        )
