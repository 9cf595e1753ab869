"""Answer extraction and comparison shared by every strategy and verifier.

One module, not a regex per strategy: a vote, a verifier and a benchmark must agree on what "the answer" of
a reply is and on when two answers are the same.

* :func:`extract_answer` finds the final answer in a reply: the last ``\\boxed{...}``, else the last explicit
  statement ("Answer: ...", "The answer is ...", "#### ..."), else the last number.
* :func:`normalize_answer` gives it a canonical spelling: ``"$1,200.00"`` and ``"1200 dollars"`` become
  ``"1200"``, ``"\\frac{6}{8}"`` becomes ``"3/4"``, ``"$x$"`` becomes ``"x"``. It never turns a real answer into
  ``""``: text it does not understand is only trimmed.
* :func:`answers_equivalent` decides whether two answers agree: exact arithmetic when both are numbers (fast,
  the vote of self-consistency calls it for every pair), ``math-verify`` for LaTeX and expressions, else the
  normalised text (case-insensitive).
"""

from __future__ import annotations

import logging
import re
import threading
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Any

__all__ = ["answers_equivalent", "extract_answer", "normalize_answer", "parse_number"]

logger = logging.getLogger(__name__)

# --- extraction ---------------------------------------------------------------------------------------

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
        if _HAS_CONTENT.search(span) and not _is_sentence(span):
            return span
    return None


_SENTENCE_WORDS = 7


def _is_sentence(span: str) -> bool:
    """A span of many words and no number is prose ("that we need to add them"), not a final answer."""
    return len(span.split()) >= _SENTENCE_WORDS and not any(c.isdigit() for c in span) and "\\" not in span


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
        if head.strip() and _numeric(normalize_answer(head)):
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


# --- normalisation ------------------------------------------------------------------------------------

_WRAPPERS = (
    re.compile(r"^\$\$(.+)\$\$$", re.S),
    re.compile(r"^\$(.+)\$$", re.S),
    re.compile(r"^\\\((.+)\\\)$", re.S),
    re.compile(r"^\\\[(.+)\\\]$", re.S),
    re.compile(r"^\*\*(.+)\*\*$", re.S),
    re.compile(r"^__(.+)__$", re.S),
    re.compile(r"^`+([^`]+)`+$", re.S),
    re.compile(r'^"([^"]+)"$'),  # a quoted answer: "6" is 6
    re.compile(r"^'([^']+)'$"),
    re.compile(r"^“([^“”]+)”$"),
    re.compile(r"^‘([^‘’]+)’$"),
    re.compile(r"^\\(?:boxed|fbox)\s*\{(.+)\}$", re.S),
    re.compile(r"^\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}$", re.S),
)
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[!,;: ]|\\displaystyle|\\left(?=[(\[|.\\])|\\right(?=[)\]|.\\])|\\\$")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°|\\degree")
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*([^{}]+?)\s*\}|(\d))\s*(?:\{\s*([^{}]+?)\s*\}|(\d))")
_SIMPLE_EQUATION = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=]+)$")
_CHOICE = re.compile(r"^\(\s*([A-Za-z])\s*\)$|^([A-Za-z])\)$")

_CURRENCY = r"(?:\$|€|£|¥|₹|USD\s*|US\$|Rs\.?\s*)"
_NUMBER_BODY = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_NUMERIC = re.compile(
    rf"""^(?P<sign>[-+]?)\s*{_CURRENCY}?\s*(?P<sign2>[-+]?)\s*
         (?P<num>{_NUMBER_BODY})(?:\s*/\s*(?P<den>\d+))?
         \s*(?P<tail>.*)$""",
    re.VERBOSE | re.S,
)
_PERCENT_TAIL = re.compile(r"^(?:%|\\%|percent\b|per\s*cent\b)", re.IGNORECASE)
_UNIT_TAIL = re.compile(r"^(?:\(\s*[^\d()]*\)|[A-Za-z][A-Za-z'’\-]*(?:[\s.,/]+[A-Za-z'’\-]+)*)[.,;!]?$")
_UNIT_POWER = re.compile(r"\^\{?[23]\}?|[²³]")
_MATH_WORDS = frozenset({
    "pi", "sqrt", "root", "roots", "i", "e", "x", "y", "z", "n", "k", "log", "ln", "sin", "cos", "tan",
    "times", "plus", "minus", "over", "divided", "squared", "cubed", "to", "or", "and", "mod",
})


def _unwrap(text: str) -> str:
    """Strip wrappers that never change an answer: ``$..$``, ``\\(..\\)``, ``**..**``, ``\\boxed{..}``."""
    changed = True
    while changed:
        changed = False
        for wrapper in _WRAPPERS:
            match = wrapper.match(text)
            if match and match.group(1).strip():
                inner = match.group(1).strip()
                if wrapper.pattern.startswith(r"^\\(?:boxed") and not _balanced(inner):
                    continue
                text = inner
                changed = True
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char == "{"
        depth -= char == "}"
        if depth < 0:
            return False
    return depth == 0


def _replace_fracs(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        numerator = match.group(1) or match.group(2)
        denominator = match.group(3) or match.group(4)
        if re.fullmatch(r"-?\d+(?:\.\d+)?", numerator) and re.fullmatch(r"\d+(?:\.\d+)?", denominator):
            return f"{numerator}/{denominator}"
        return match.group(0)

    return _FRAC.sub(one, text)


def _canonical_number(value: Fraction, *, as_fraction: bool) -> str:
    """``14``, ``0.5``, ``3/4``: integers bare; a fraction stays a (reduced) fraction, a decimal a decimal
    unless it does not terminate."""
    if value.denominator == 1:
        return str(value.numerator)
    if as_fraction:
        return f"{value.numerator}/{value.denominator}"
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
        return format(decimal.normalize(), "f")
    return f"{value.numerator}/{value.denominator}"


def _number_of(match: re.Match[str]) -> Fraction | None:
    sign = -1 if "-" in (match.group("sign") + match.group("sign2")) else 1
    if match.group("sign") and match.group("sign2"):
        return None
    try:
        value = Fraction(Decimal(match.group("num").replace(",", "")))
    except (InvalidOperation, ValueError):
        return None
    if match.group("den") is not None:
        denominator = int(match.group("den"))
        if denominator == 0 or "." in match.group("num"):
            return None
        value /= denominator
    return sign * value


def _tail_is_unit(tail: str) -> bool:
    """A tail that only names what was counted ("apples", "(apples)", "km/h", "m^2") and no more maths."""
    tail = _UNIT_POWER.sub("", tail).strip()
    if not _UNIT_TAIL.match(tail):
        return False
    first = re.match(r"\(?\s*([A-Za-z]+)", tail)
    return first is None or first.group(1).lower() not in _MATH_WORDS


def _numeric(text: str) -> tuple[Fraction, str] | None:
    """Parse a number with optional currency, thousands commas, a fraction, a percent sign or units."""
    match = _NUMERIC.match(text)
    if match is None:
        return None
    value = _number_of(match)
    if value is None:
        return None
    tail = match.group("tail").strip()
    if tail:
        percent = _PERCENT_TAIL.match(tail)
        if percent:
            tail = tail[percent.end() :].strip()
        if tail and not _tail_is_unit(tail):
            return None
    return value, _canonical_number(value, as_fraction=match.group("den") is not None)


def _normalize_once(text: str) -> str:
    text = text.strip().replace("\u2212", "-").replace("\u2013", "-").replace("\u00a0", " ")
    text = _unwrap(text)
    text = _LATEX_NOISE.sub("", text).replace("{,}", ",")
    text = _DEGREES.sub("", text).strip()
    text = _TEXT_COMMAND.sub(lambda m: m.group(1), text)
    text = _replace_fracs(text)
    text = re.sub(r"\s+", " ", text).strip()
    while text.endswith(".") and not text.endswith("..") and len(text) > 1:
        text = text[:-1].rstrip()
    text = _unwrap(text)
    equation = _SIMPLE_EQUATION.match(text)
    if equation and equation.group(1).strip():
        text = equation.group(1).strip()
    choice = _CHOICE.match(text)
    if choice:
        return choice.group(1) or choice.group(2)
    numeric = _numeric(text)
    if numeric is not None:
        return numeric[1]
    return text


# A number already in canonical form ("12", "-0.5"; not "-0", "1.0", "007"): normalising it changes nothing.
_CANONICAL_NUMBER = re.compile(r"(?:-?[1-9]\d*|0)(?:\.\d*[1-9])?|-0\.\d*[1-9]")


@lru_cache(maxsize=65536)
def normalize_answer(answer: str) -> str:
    """A canonical spelling of an answer: numbers bare (``"$1,200.00"`` -> ``"1200"``, ``"14.0"`` -> ``"14"``,
    ``"50%"`` -> ``"50"``, ``"9 apples"`` -> ``"9"``), fractions reduced (``"\\frac{6}{8}"`` -> ``"3/4"``), LaTeX
    wrappers and a trailing period removed. Idempotent; never empties a non-empty answer."""
    if _CANONICAL_NUMBER.fullmatch(answer):
        return answer  # already canonical: what extract_answer gives, and what votes mostly compare
    original = answer.strip()
    text = original
    for _ in range(8):
        cleaned = _normalize_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text if text else original


def parse_number(answer: str) -> Fraction | None:
    """The exact value of an answer that is a plain number (after normalisation), else ``None``."""
    return _value(answer)


@lru_cache(maxsize=65536)
def _value(answer: str) -> Fraction | None:
    if _CANONICAL_NUMBER.fullmatch(answer):
        return Fraction(answer)
    parsed = _numeric(normalize_answer(answer))
    return parsed[0] if parsed is not None else None


# --- equivalence --------------------------------------------------------------------------------------

_PLAIN_WORDS = re.compile(r"^[A-Za-z][A-Za-z '’\-]*$")
_RELATIVE_TOLERANCE = Fraction(1, 10**6)


def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    if a.denominator == 1 and b.denominator == 1:
        return False
    # A rounded decimal against an exact value: 0.333333 vs 1/3.
    return abs(a - b) <= _RELATIVE_TOLERANCE * max(abs(a), abs(b))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=8192)
def _math_parse(text: str, main_thread: bool) -> tuple[Any, ...]:
    """math-verify's parse of one answer. Its timeout uses ``signal.alarm``, which works only in the main
    thread; elsewhere it runs without one."""
    import math_verify

    timeout = 5 if main_thread else None
    try:
        return tuple(math_verify.parse(f"${text}$", parsing_timeout=timeout))  # type: ignore[arg-type]
    except Exception:  # math-verify raises for odd input and for signals outside the main thread
        logger.debug("math-verify could not parse %r", text, exc_info=True)
        return ()


@lru_cache(maxsize=8192)
def _math_equal(a: str, b: str) -> bool:
    import math_verify

    main_thread = _in_main_thread()
    parsed_a, parsed_b = _math_parse(a, main_thread), _math_parse(b, main_thread)
    if not parsed_a or not parsed_b:
        return False
    timeout = 5 if main_thread else None
    try:
        return bool(math_verify.verify(list(parsed_a), list(parsed_b), timeout_seconds=timeout))
    except Exception:
        logger.debug("math-verify could not compare %r and %r", a, b, exc_info=True)
        return False


def answers_equivalent(a: str | None, b: str | None) -> bool:
    """Whether two answers agree. ``None`` (no answer) agrees with nothing.

    Numbers compare exactly (``"1,200"`` == ``"1200.0"``, ``"0.75"`` == ``"3/4"``); LaTeX and expressions go to
    ``math-verify`` (``"\\frac{\\sqrt{2}}{2}"`` == ``"\\sqrt{2}/2"``); anything else compares as normalised text,
    ignoring case.
    """
    if a is None or b is None:
        return False
    if a == b:
        return bool(a.strip())
    value_a, value_b = _value(a), _value(b)
    if value_a is not None and value_b is not None:
        return _numbers_equal(value_a, value_b)
    norm_a, norm_b = normalize_answer(a), normalize_answer(b)
    if not norm_a or not norm_b:
        return False
    if norm_a.casefold() == norm_b.casefold():
        return True
    if _PLAIN_WORDS.match(norm_a) and _PLAIN_WORDS.match(norm_b):
        return False
    if norm_b < norm_a:
        norm_a, norm_b = norm_b, norm_a
    return _math_equal(norm_a, norm_b)
