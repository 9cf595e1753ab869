"""Answer extraction: the final answer of a model's reply, shared by every strategy and verifier.

One module, not a regex per strategy: a vote, a verifier and a benchmark must agree on what "the answer" of
a reply is. :func:`extract_answer` looks for the last ``\\boxed{...}``, else the last explicit statement
("Answer: ...", "The answer is ...", "#### ..."), else the last number; a reply with none of them has no
answer (``None``), never a guessed one.

Normalisation lives in :mod:`thinkloop.verifiers.normalize` and comparison in
:mod:`thinkloop.verifiers.equivalence`; their public names are re-exported here, where callers have always
imported them from.
"""

from __future__ import annotations

import re

from thinkloop.verifiers.equivalence import answers_equivalent
from thinkloop.verifiers.normalize import normalize_answer, parse_number

__all__ = ["answers_equivalent", "extract_answer", "normalize_answer", "parse_number"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)|\\boxed\s+([^\s${}]+)")
# What may follow the word "answer" for it to announce one: "Answer:", "**Answer:**", "answer is", "answer =".
_ANSWER_TAIL = re.compile(r"\b\s*(?:\*\*|__)?\s*[:：](?:\s*\*\*|\s*__)?|\s+(?:is|would\s+be|will\s+be|=)\s*:?")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n")
_LAST_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|(?<![\w.])-?\.\d+")
_HAS_CONTENT = re.compile(r"\w")


def _boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` (braces may nest), or ``None``."""
    found: str | None = None
    for match in _BOXED.finditer(text):
        if match.group(2) is not None:
            found = match.group(2)
            continue
        depth = 0
        start = match.end(1)
        for index in range(match.start(1), len(text)):
            char = text[index]
            if char == "{" and text[index - 1] != "\\":
                depth += 1
            elif char == "}" and text[index - 1] != "\\":
                depth -= 1
                if depth == 0:
                    found = text[start:index]
                    break
    return found


def _marker_ends(text: str) -> list[int]:
    """Where each explicit answer statement ends ("Answer:", "the answer is", a "####" line), in order.

    ``str.find`` first and a regex only at the hits: a reply is long and a regex scan of all of it is slow.
    """
    lower = text.lower()
    ends = []
    index = lower.find("answer")
    while index != -1:
        before = lower[index - 1] if index > 0 else " "
        if not (before.isalnum() or before == "_"):
            tail = _ANSWER_TAIL.match(lower, index + 6)
            if tail is not None:
                ends.append(tail.end())
        index = lower.find("answer", index + 6)
    index = text.find("####")
    while index != -1:
        line_start = text.rfind("\n", 0, index) + 1
        if not text[line_start:index].strip(" \t") and not text.startswith("#", index + 4):
            ends.append(index + 4)
        index = text.find("####", index + 4)
    return sorted(ends)


def _after_last_marker(text: str) -> str | None:
    """What follows the last explicit answer statement, up to the end of its sentence."""
    for end in reversed(_marker_ends(text)):
        line = text[end:].lstrip(" \t*_:")
        if line.startswith("\n"):
            # "Answer:" alone on its line: the answer is on the next non-empty line.
            line = line.lstrip()
        stop = _SENTENCE_END.search(line)
        span = line[: stop.start()] if stop else line
        span = _leading_number(span.strip().strip("*_").strip())
        if _HAS_CONTENT.search(span):
            return span
    return None


def _last_number(text: str) -> str | None:
    """The last number in the text; only the end of the text is searched (a regex over all of it is slow)."""
    last_digit = max(text.rfind(digit) for digit in "0123456789")
    if last_digit == -1:
        return None
    start = max(0, last_digit - 256)
    if start > 0:
        # Begin at a token boundary so that the window does not cut a number in two.
        start = text.find(" ", start, last_digit) + 1 or start
    numbers = _LAST_NUMBER.findall(text, start, last_digit + 1)
    return numbers[-1] if numbers else None


# What may end a number stated as the answer: an explanation ("because ...", "(6 x 7)") always; a comma or
# "and" only before words ("42, which ..."), since before numbers they make a list ("3, 5, 7").
_EXPLANATION = re.compile(r"\s+(?:because|since|as|which|so|from|by|given)\s+|\s+[(\[]", re.IGNORECASE)
_LIST_OR_CLAUSE = re.compile(r",\s+|\s+and\s+", re.IGNORECASE)


def _leading_number(span: str) -> str:
    """"42, because 6 * 7 = 42" -> "42": a number followed by an explanation (never inside ``$...$``)."""
    if span.count("$") >= 2 or "\\(" in span or "\\[" in span:
        return span
    cuts = []
    explanation = _EXPLANATION.search(span)
    if explanation is not None:
        cuts.append(explanation.start())
    clause = _LIST_OR_CLAUSE.search(span)
    if clause is not None and span[clause.end() :][:1].isalpha():
        cuts.append(clause.start())
    if cuts:
        head = span[: min(cuts)]
        if head.strip() and parse_number(head) is not None:
            return head
    return span


def extract_answer(text: str) -> str | None:
    """The final answer of a reply, normalised (see :func:`normalize_answer`); ``None`` when it has none.

    Looks for, in order: the last ``\\boxed{...}``; the last "Answer: X" / "The answer is X" / "#### X";
    the last number in the text.
    """
    if not text:
        return None
    for span in (_boxed(text), _after_last_marker(text)):
        if span is not None and _HAS_CONTENT.search(span):
            answer = normalize_answer(span)
            if answer:
                return answer
    number = _last_number(text)
    return normalize_answer(number) if number is not None else None
