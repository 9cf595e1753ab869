"""Reading a score a model states ("SCORE: 8", "**Score:** 7/10", "8.5 out of 10"), or nothing.

Why apart: a tree search values its thoughts by asking the model for a score, and a misread score prunes a
good thought or keeps a bad one silently. The reader takes the *last* score stated (a reply may quote an
earlier one: "Previous score: 2. SCORE: 8" is 8), reads markdown and ``=`` as well as ``:``, a scale written
out ("/10", "out of 10", "/100"), and returns ``None`` when no score is stated or one is out of range, so the
caller can say so instead of reading it as 0.
"""

from __future__ import annotations

import re

__all__ = ["read_score"]

_NUMBER = r"(?P<n>\d+(?:\.\d+)?|\.\d+)"
_SCALE = r"(?:\s*(?:/|out\s+of|of)\s*(?P<scale>\d+(?:\.\d+)?))?"
# "SCORE: 8", "**SCORE:** 9", "Score = 7", "score is 6/10", "SCORE: [8]"
_LABELLED = re.compile(
    rf"(?<![A-Za-z])(?:score|rating)[\s*_`]*(?:[:=]|\bis\b|\bof\b)[\s*_`\[(]*{_NUMBER}{_SCALE}", re.I
)
# "8.5 out of 10", "7/10" with no label
_OUT_OF = re.compile(rf"(?<![\w.]){_NUMBER}\s*(?:/|out\s+of)\s*(?P<scale>10|100|5|1)(?!\d|\.\d)", re.I)


def read_score(text: str, *, scale: float = 10.0) -> float | None:
    """The last score stated in ``text``, as a fraction of its scale in [0, 1]; ``None`` when there is none.

    ``scale`` is the scale the prompt asked for, used when the reply does not write one out. A score above
    its scale (``SCORE: 85`` on a scale of 10) is not guessed at: ``None``.
    """
    found: list[tuple[int, str, str | None]] = []
    for pattern in (_LABELLED, _OUT_OF):
        for match in pattern.finditer(text):
            found.append((match.start(), match.group("n"), match.group("scale")))
    if not found:
        return None
    _, number, written = max(found, key=lambda item: item[0])
    value = float(number)
    top = float(written) if written is not None else scale
    if top <= 0 or not 0.0 <= value <= top:
        return None
    return value / top
