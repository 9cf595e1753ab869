"""Canonical spelling of an answer, and its exact value when it is a number.

Why apart from extraction and comparison: the vote groups answers by this spelling, a verifier compares a
reference with it, and extraction uses it to tell a number from prose. One definition keeps them agreeing.

* :func:`normalize_answer`: ``"$1,200.00"`` and ``"1200 dollars"`` become ``"1200"``, ``"\\frac{6}{8}"``
  becomes ``"3/4"``, ``"$x$"`` becomes ``"x"``. It never turns a real answer into ``""``: text it does not
  understand is only trimmed.
* :func:`parse_number`: the exact value (a :class:`~fractions.Fraction`) of an answer that is a plain number.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

__all__ = ["normalize_answer", "parse_number"]

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
# Spacing commands, but not a row break "\\" followed by a space (a matrix keeps its rows).
_LATEX_NOISE = re.compile(r"(?<!\\)\\[!,;: ]|\\displaystyle|\\left(?=[(\[|.\\])|\\right(?=[)\]|.\\])|\\\$")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°|\\degree")
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*([^{}]+?)\s*\}|(\d))\s*(?:\{\s*([^{}]+?)\s*\}|(\d))")
_FRAC_VARIANT = re.compile(r"\\[dt]frac(?![A-Za-z])")
_SIMPLE_EQUATION = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=]+)$")
# "2 + 2 = 4", "48 / 2 = 24": a worked sum stated as the answer; its result is the answer.
_ARITHMETIC_EQUATION = re.compile(r"^(?=[^=]*\d)(?=[^=]*\d\s*[-+*/×÷x]\s*[\d(])[-+*/×÷x\d\s.,()$]+=\s*([^=]+)$")
# "$3\frac{1}{3}$ cups": mathematics followed by the unit it counts.
_MATH_THEN_WORDS = re.compile(r"^\$([^$]+)\$\s*([^$]+)$")
_CHOICE = re.compile(r"^\(\s*([A-Za-z])\s*\)$|^([A-Za-z])\)$")

_CURRENCY = r"(?:\$|€|£|¥|₹|USD\s*|US\$|Rs\.?\s*)"
# Thousands grouped by commas ("12,500") or by spaces, thin or not ("12 500", "12\u2009500": SI style), never
# followed by a fraction bar ("2 125/1000" is a mixed number); then decimals and an exponent ("1.5e3", "2E-4":
# an "e" between digits is a power of ten, never Euler's number).
_GROUP_SPACE = "[ \u2009\u202f\u00a0]"
_NUMBER_BODY = (
    rf"(?:\d{{1,3}}(?:,\d{{3}})+|\d{{1,3}}(?:{_GROUP_SPACE}\d{{3}})+(?![\d/])|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"|\.\d+(?:[eE][-+]?\d+)?"
)
# "2 \times 10^{3}", "2×10^3": a power of ten written out.
_TIMES_TEN = r"(?:\s*(?:\\times|\\cdot|×|·|\*)\s*10\s*\^\s*\{?\s*(?P<power>[-+]?\d+)\s*\}?)"
_NUMERIC = re.compile(
    rf"""^(?P<sign>[-+]?)\s*{_CURRENCY}?\s*(?P<sign2>[-+]?)\s*
         (?P<num>{_NUMBER_BODY}){_TIMES_TEN}?(?:\s+(?P<part>\d+)\s*/\s*(?P<part_den>\d+)|\s*/\s*(?P<den>\d+))?
         \s*(?P<tail>.*)$""",
    re.VERBOSE | re.S,
)
_MAX_EXPONENT = 1000
"""Larger powers of ten are not read as numbers (``1e999999999`` would not fit in memory as a Fraction)."""
_SEPARATORS = str.maketrans("", "", ", \u2009\u202f\u00a0")
_PERCENT_TAIL = re.compile(r"^(?:%|\\%|percent\b|per\s*cent\b)", re.IGNORECASE)
_UNIT_TAIL = re.compile(r"^(?:\(\s*[^\d()]*\)|[A-Za-z][A-Za-z'’\-]*(?:[\s.,/]+[A-Za-z'’\-]+)*)[.,;!]?$")
_UNIT_POWER = re.compile(r"\^\{?[23]\}?|[²³]")
_MATH_WORDS = frozenset(
    {
        "pi",
        "sqrt",
        "root",
        "roots",
        "i",
        "e",
        "x",
        "y",
        "z",
        "n",
        "k",
        "log",
        "ln",
        "sin",
        "cos",
        "tan",
        "times",
        "plus",
        "minus",
        "over",
        "divided",
        "squared",
        "cubed",
        "to",
        "or",
        "and",
        "mod",
    }
)


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


def replace_fracs(text: str) -> str:
    """``\\frac{3}{4}`` -> ``3/4`` where both parts are numbers; after a digit it is a mixed number
    (``3\\frac{1}{3}`` -> ``3 1/3``, never ``31/3``). Other fractions are left as they are."""

    def one(match: re.Match[str]) -> str:
        numerator = match.group(1) or match.group(2)
        denominator = match.group(3) or match.group(4)
        if re.fullmatch(r"-?\d+(?:\.\d+)?", numerator) and re.fullmatch(r"\d+(?:\.\d+)?", denominator):
            start = match.start()
            mixed = start > 0 and match.string[start - 1].isdigit()
            return f"{' ' if mixed else ''}{numerator}/{denominator}"
        return match.group(0)

    if "frac" not in text:
        return text
    return _FRAC.sub(one, _FRAC_VARIANT.sub(r"\\frac", text))


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
    num = match.group("num").translate(_SEPARATORS)
    power = match.group("power")
    try:
        decimal = Decimal(num)
        exponent = decimal.as_tuple().exponent  # a letter for NaN and infinity
        if not isinstance(exponent, int) or abs(exponent + (int(power) if power is not None else 0)) > _MAX_EXPONENT:
            return None
        value = Fraction(decimal)
    except (InvalidOperation, ValueError):
        return None
    if power is not None:
        value *= Fraction(10) ** int(power)
    scientific = power is not None or "e" in num or "E" in num
    if (match.group("den") is not None or match.group("part") is not None) and scientific:
        return None
    if match.group("den") is not None:
        denominator = int(match.group("den"))
        if denominator == 0 or "." in match.group("num"):
            return None
        value /= denominator
    elif match.group("part") is not None:  # a mixed number: "2 1/2"
        part, part_denominator = int(match.group("part")), int(match.group("part_den"))
        if not 0 < part < part_denominator or not match.group("num").isdigit():
            return None
        value += Fraction(part, part_denominator)
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
    as_fraction = match.group("den") is not None or match.group("part") is not None
    return value, _canonical_number(value, as_fraction=as_fraction)


def _normalize_once(text: str) -> str:
    text = text.strip().replace("\u2212", "-").replace("\u2013", "-").replace("\u00a0", " ")
    text = _unwrap(text)
    text = _LATEX_NOISE.sub("", text).replace("{,}", ",")
    text = _DEGREES.sub("", text).strip()
    text = _TEXT_COMMAND.sub(lambda m: m.group(1), text)
    text = replace_fracs(text)
    text = re.sub(r"\s+", " ", text).strip()
    while text.endswith(".") and not text.endswith("..") and len(text) > 1:
        text = text[:-1].rstrip()
    text = _unwrap(text)
    equation = _SIMPLE_EQUATION.match(text) or _ARITHMETIC_EQUATION.match(text)
    if equation and equation.group(1).strip():
        text = equation.group(1).strip()
    counted = _MATH_THEN_WORDS.match(text)
    if counted and counted.group(1).strip() and _tail_is_unit(counted.group(2).strip()):
        text = counted.group(1).strip()
    choice = _CHOICE.match(text)
    if choice:
        return choice.group(1) or choice.group(2)
    numeric = _numeric(text)
    if numeric is not None:
        return numeric[1]
    return text


# A number already in canonical form ("12", "-0.5"; not "-0", "1.0", "007"): normalising it changes nothing.
_CANONICAL_NUMBER = re.compile(r"(?:-?[1-9]\d*|0)(?:\.\d*[1-9])?|-0\.\d*[1-9]")


def is_canonical_number(text: str) -> bool:
    """Whether ``text`` is a number as :func:`normalize_answer` spells it ("42", "-0.5"): nothing to clean."""
    return _CANONICAL_NUMBER.fullmatch(text) is not None


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


@lru_cache(maxsize=65536)
def parse_number(answer: str) -> Fraction | None:
    """The exact value of an answer that is a plain number (after normalisation), else ``None``."""
    if _CANONICAL_NUMBER.fullmatch(answer):
        return Fraction(answer)
    parsed = _numeric(normalize_answer(answer))
    return parsed[0] if parsed is not None else None
