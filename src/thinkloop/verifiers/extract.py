"""Answer extraction: the final answer of a model's reply, shared by every strategy and verifier.

One module, not a regex per strategy: a vote, a verifier and a benchmark must agree on what "the answer" of
a reply is. :func:`extract_answer` looks for the last ``\\boxed{...}``, else the last explicit statement
("Answer: ...", "The answer is ...", "#### ..."), else the last number; a reply with none of them has no
answer (``None``), never a guessed one. A reasoning block (``<think>...</think>``) is scratch work: the answer
is read after it, and a block that was never closed (a reply cut off mid-reasoning) has no answer. The last
number is not taken from a reply that ends in a question (a restated problem, a clarifying question) or
mid-statement ("... so the total is"): those replies did not answer. ``tests/data/extraction_golden.jsonl``
holds the labelled replies this must get right.

Normalisation lives in :mod:`thinkloop.verifiers.normalize` and comparison in
:mod:`thinkloop.verifiers.equivalence`; their public names are re-exported here, where callers have always
imported them from.
"""

from __future__ import annotations

import re

from thinkloop.verifiers.equivalence import answers_equivalent
from thinkloop.verifiers.normalize import is_canonical_number, normalize_answer, parse_number, replace_fracs

__all__ = ["answers_equivalent", "extract_answer", "normalize_answer", "parse_number"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)|\\boxed\s+([^\s${}]+)")
# What may follow the word "answer" for it to announce one: "Answer:", "**Answer:**", "answer is", "answer =".
_ANSWER_TAIL = re.compile(r"\b\s*(?:\*\*|__|\})?\s*[:：](?:\s*\*\*|\s*__|\s*\})?|\s+(?:is|would\s+be|will\s+be|=)\s*:?")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n")
# A number, not an exponent ("m^2") nor part of a word.
# Thousands may be grouped by commas or (thin) spaces ("12 500 dollars" is 12500, never 500), and an exponent
# belongs to its number ("1e6" is a million, never 1 or 6).
# A clock time or a ratio ("4:00", "3:4") is read whole: its "00" is not the answer 0.
_LAST_NUMBER = re.compile(
    r"(?<![\w.^:])\d+(?::\d+)+(?![\d:])"
    r"|(?<![\w.^:])-?(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?:[ \u2009\u202f\u00a0]\d{3})+(?![\d/])|\d+)(?:\.\d+)?"
    r"(?:[eE][-+]?\d+(?!\w))?(?:/\d+)?|(?<![\w.^:])-?\.\d+"
)
_HAS_CONTENT = re.compile(r"\w")
_EMPTY_BOX = re.compile(r"^\\(?:boxed|fbox)\s*\{\s*\}$")
# Words a model states instead of an answer ("The answer is unclear", "... is not determined").
_NON_ANSWER = re.compile(
    r"^(?:unclear|unknown|uncertain|undetermined|indeterminate|not\b.*|cannot be determined|"
    r"can't be determined|impossible to (?:tell|say|determine))$",
    re.IGNORECASE,
)
_THINK_TAG = re.compile(r"<(/?)think(?:ing)?>", re.IGNORECASE)
# A reply that stops on these was cut off before stating its result: "... so the total is", "16 - 3 =".
_UNFINISHED = re.compile(
    r"(?:[=:+\-×÷(,]|(?<!\*)[*/]|\b(?:is|are|was|were|be|equals?|gets?|gives?|makes?|of|to|by|and|or|the|a|an|"
    r"than|with|from|into|plus|minus))\s*$",
    re.IGNORECASE,
)
# A bare "Answer:" at the very end: the model concluded before it, so what precedes it is still read.
_TRAILING_MARKER = re.compile(r"(?:\*\*|__)?(?:final\s+)?answer\s*(?:\*\*|__)?\s*[:：]?\s*(?:\*\*|__)?\s*$", re.I)


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
        line = text[end:].lstrip(" \t*_:}")
        if line.startswith("\n"):
            # "Answer:" alone on its line: the answer is on the next non-empty line.
            line = line.lstrip()
        stop = _SENTENCE_END.search(line)
        span = line[: stop.start()] if stop else line
        span = span.strip().strip("*_").strip()
        if is_canonical_number(span):
            return span  # "Answer: 42", the common case: nothing to cut or to rule out
        span = _leading_number(span)
        if (
            _HAS_CONTENT.search(span)
            and not _NON_ANSWER.match(span)
            and not _EMPTY_BOX.match(span)
            and not _is_sentence(span)
        ):
            return span
    return None


_SENTENCE_WORDS = 7


def _is_sentence(span: str) -> bool:
    """A span of many words and no number is prose ("that we need to add them"), not a final answer."""
    return len(span.split()) >= _SENTENCE_WORDS and not any(c.isdigit() for c in span) and "\\" not in span


def _last_number(text: str) -> str | None:
    """The last number in the text, unless the text ends in a question or mid-statement; only the end of
    the text is searched (a regex over all of it is slow). ``\\frac{a}{b}`` counts as the number a/b."""
    end = text.rstrip()
    marker = _TRAILING_MARKER.search(end[-32:])
    if marker is not None:
        end = end[: len(end) - len(end[-32:]) + marker.start()].rstrip()
    if end.endswith("?") or _UNFINISHED.search(end[-16:]):
        return None
    last_digit = max(text.rfind(digit) for digit in "0123456789")
    if last_digit == -1:
        return None
    start = max(0, last_digit - 256)
    if start > 0:
        # Begin at a token boundary so that the window does not cut a number in two.
        start = text.find(" ", start, last_digit) + 1 or start
    window = replace_fracs(text[start : min(len(text), last_digit + 2)])
    numbers = _LAST_NUMBER.findall(window)
    return numbers[-1] if numbers else None


def _after_reasoning(text: str) -> str | None:
    """The part of a reply that states its answer: what follows its last closed reasoning block (the block
    itself when nothing follows); ``None`` when a block was opened and never closed (cut off mid-way)."""
    if "think" not in text and "THINK" not in text and "Think" not in text:
        return text
    tags = list(_THINK_TAG.finditer(text))
    if not tags:
        return text
    last = tags[-1]
    if not last.group(1):  # "<think>" with no "</think>" after it
        return None
    after = text[last.end() :]
    if after.strip():
        return after
    opening = next((tag for tag in reversed(tags[:-1]) if not tag.group(1)), None)
    return text[opening.end() if opening is not None else 0 : last.start()]


# What may end a number stated as the answer: an explanation ("because ...", "(6 x 7)") always; a comma or
# "and" only before words ("42, which ..."), since before numbers they make a list ("3, 5, 7").
_EXPLANATION = re.compile(r"\s+(?:because|since|as|which|so|from|by|given)\s+|\s+[(\[]", re.IGNORECASE)
_LIST_OR_CLAUSE = re.compile(r",\s+|\s+and\s+", re.IGNORECASE)


def _leading_number(span: str) -> str:
    """ "42, because 6 * 7 = 42" -> "42": a number followed by an explanation (never inside ``$...$``)."""
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


# The common ending, "Answer: 42", read off the reply's tail without the general search (which lower-cases
# and scans the whole reply). It gives what the general search gives or nothing (then the search runs):
# "Answer"/"answer" as a word of its own (its last "nswer" found first, so only that one is tried), a bare
# number.
_STATED_LAST = re.compile(r"(?:^|(?<=[\s*]))[Aa]nswer\s*[:：]\s*(-?\d+(?:\.\d+)?)\s*\.?\s*$")
_STATED_LAST_REACH = 64


def extract_answer(text: str) -> str | None:
    """The final answer of a reply, normalised (see :func:`normalize_answer`); ``None`` when it has none.

    Looks for, in order: the last ``\\boxed{...}``; the last "Answer: X" / "The answer is X" / "#### X";
    the last number in the text.
    """
    if not text:
        return None
    visible = _after_reasoning(text)
    if visible is None:
        return None
    text = visible
    at = text.rfind("nswer", -_STATED_LAST_REACH)
    if at > 0 and "\\" not in text:  # no \boxed{}: a reply that ends "Answer: 42" states its answer last
        stated = _STATED_LAST.match(text, at - 1)
        if stated is not None and is_canonical_number(stated.group(1)):
            return stated.group(1)
    return _search(text)


def _search(text: str) -> str | None:
    """The answer of a reply's visible part: boxed, else stated, else its last number."""
    for span in (_boxed(text), _after_last_marker(text)):
        if span is not None and _HAS_CONTENT.search(span) and not _EMPTY_BOX.match(span.strip()):
            answer = normalize_answer(span)
            if answer:
                return answer
    number = _last_number(text)
    return normalize_answer(number) if number is not None else None
