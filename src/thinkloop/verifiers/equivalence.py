"""When two answers are the same answer: exact for numbers, ``math-verify`` for LaTeX and expressions.

Why exact: a relative tolerance is not transitive. With one, ``2500001.5`` passed for a reference of
``2500000``, and a vote merged ``1000000`` with ``1000001`` through ``1000000.5``. So numbers compare as the
exact values they were written as (``"1,200"`` == ``"1200.0"``, ``"0.75"`` == ``"3/4"``, ``"0.333333"`` !=
``"1/3"``), and a tolerance applies only where a caller gives one (``tolerance=``, e.g. for a reference known
to be rounded).

Why canonical keys: comparing every pair of answers with ``math-verify`` costs seconds. :func:`canonical_key`
gives each answer, once, a key such that equal keys are always equivalent (numbers by value, words by their
case-folded text, expressions by ``math-verify``'s parse); only answers whose keys differ and that hold an
expression (:func:`needs_comparison`) are compared pairwise, and every slow step takes a ``deadline`` (a
:func:`time.monotonic` instant) after which it does not start.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from thinkloop.verifiers.normalize import normalize_answer, parse_number

__all__ = ["AnswerKey", "answers_equivalent", "canonical_key", "needs_comparison", "numbers_equal"]

logger = logging.getLogger(__name__)

AnswerKey = tuple[str, Any]
"""``("number", Fraction)``, ``("text", casefolded words)``, ``("colon", (parts, am/pm))`` or
``("expr", canonical expression text)``."""

_PLAIN_WORDS = re.compile(r"^[A-Za-z][A-Za-z '’\-]*$")
# Text math-verify would misread as a product: numbers side by side ("12 00" as 12*0, so equal to 0) or an
# exponent's "e" ("2e3+1" as 2*E*3+1). Such answers compare as written, never through math-verify.
_MISREAD_AS_PRODUCT = re.compile(r"\d\s+\.?\d|\d[eE][-+]?\d")
# A clock time or a ratio ("4:00", "3:4", "12:30:05 pm"): compared part by part as written, so "4:00" is never
# "5:00" (math-verify reads both as a division by zero, equal to each other).
_COLON_FORM = re.compile(r"^(\d+(?::\d+)+)\s*([AaPp]\.?\s*[Mm]\.?)?$")


def _colon_key(text: str) -> AnswerKey | None:
    match = _COLON_FORM.match(text)
    if match is None:
        return None
    suffix = (match.group(2) or "").replace(".", "").replace(" ", "").lower()
    return ("colon", (tuple(int(part) for part in match.group(1).split(":")), suffix))


def _plain_only(text: str) -> bool:
    """Whether an answer must be compared as written: math-verify would misread it."""
    return _MISREAD_AS_PRODUCT.search(text) is not None or _COLON_FORM.match(text) is not None


_MATH_VERIFY_TIMEOUT = 5
"""Seconds one math-verify parse or comparison may take when no deadline is nearer."""


def _as_fraction(tolerance: float | Fraction | Decimal | str) -> Fraction:
    value = Fraction(Decimal(str(tolerance))) if isinstance(tolerance, float | str) else Fraction(tolerance)
    if value < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    return value


def numbers_equal(a: Fraction, b: Fraction, *, tolerance: float | Fraction | None = None) -> bool:
    """Exact equality, or within ``tolerance`` relative to the larger magnitude when one is given."""
    if a == b:
        return True
    if tolerance is None:
        return False
    return abs(a - b) <= _as_fraction(tolerance) * max(abs(a), abs(b))


def _time_left(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline - time.monotonic()


def _timeout(deadline: float | None) -> int | None:
    """math-verify's timeout (whole seconds, ``signal.alarm``; only the main thread may set one)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    left = _time_left(deadline)
    return _MATH_VERIFY_TIMEOUT if left >= _MATH_VERIFY_TIMEOUT else max(1, math.ceil(left))


_parsed: dict[str, tuple[Any, ...]] = {}
_compared: dict[tuple[str, str], bool] = {}
_exact: dict[tuple[str, str, str | None], bool] = {}
_CACHE_LIMIT = 8192


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _math_parse(text: str, deadline: float | None) -> tuple[Any, ...] | None:
    """math-verify's parse of one answer: ``()`` when it cannot parse, ``None`` when the deadline came
    first (not cached, so a later call with time to spare parses it)."""
    if text in _parsed:
        return _parsed[text]
    if _time_left(deadline) <= 0:
        return None
    import math_verify

    try:
        parsed = tuple(math_verify.parse(f"${text}$", parsing_timeout=_timeout(deadline)))
    except Exception:  # math-verify raises for odd input, for its timeout and for signals off the main thread
        logger.debug("math-verify could not parse %r", text, exc_info=True)
        if _time_left(deadline) <= 0:
            return None
        parsed = ()
    _remember(_parsed, text, parsed)
    return parsed


def _math_equal(a: str, b: str, deadline: float | None) -> bool:
    if b < a:
        a, b = b, a
    if (a, b) in _compared:
        return _compared[(a, b)]
    parsed_a, parsed_b = _math_parse(a, deadline), _math_parse(b, deadline)
    if not parsed_a or not parsed_b or _time_left(deadline) <= 0 or _undefined(parsed_a) or _undefined(parsed_b):
        return False
    import math_verify

    try:
        equal = bool(math_verify.verify(list(parsed_a), list(parsed_b), timeout_seconds=_timeout(deadline)))
    except Exception:
        logger.debug("math-verify could not compare %r and %r", a, b, exc_info=True)
        if _time_left(deadline) <= 0:
            return False
        equal = False
    _remember(_compared, (a, b), equal)
    return equal


def _undefined(parsed: tuple[Any, ...]) -> bool:
    """A parse that is a division by zero or not a number: equal to nothing, itself included."""
    import sympy

    expression = parsed[0]
    return isinstance(expression, sympy.Basic) and bool(expression.has(sympy.zoo, sympy.nan))


def answers_equivalent(
    a: str | None, b: str | None, *, tolerance: float | Fraction | None = None, deadline: float | None = None
) -> bool:
    """Whether two answers agree. ``None`` (no answer) agrees with nothing.

    Numbers compare exactly (``"1,200"`` == ``"1200.0"``, ``"0.75"`` == ``"3/4"``), or within ``tolerance``
    (relative) when one is given; LaTeX and expressions go to ``math-verify`` (``"\\frac{\\sqrt{2}}{2}"`` ==
    ``"\\sqrt{2}/2"``), which is not started after ``deadline`` (a :func:`time.monotonic` instant: then the
    answers count as different); anything else compares as normalised text, ignoring case.
    """
    if a is None or b is None:
        return False
    if a == b:
        return bool(a.strip())
    value_a, value_b = parse_number(a), parse_number(b)
    if value_a is not None and value_b is not None:
        return numbers_equal(value_a, value_b, tolerance=tolerance)
    norm_a, norm_b = normalize_answer(a), normalize_answer(b)
    if not norm_a or not norm_b:
        return False
    colon_a, colon_b = _colon_key(norm_a), _colon_key(norm_b)
    if colon_a is not None or colon_b is not None:
        return colon_a == colon_b
    if norm_a.casefold() == norm_b.casefold():
        return True
    if _PLAIN_WORDS.match(norm_a) and _PLAIN_WORDS.match(norm_b):
        return False
    if _plain_only(norm_a) or _plain_only(norm_b):
        return False
    if value_a is not None or value_b is not None:
        value, other = (value_a, norm_b) if value_a is not None else (value_b, norm_a)
        assert value is not None
        exact = _number_against_constant(value, other, tolerance, deadline)
        if exact is not None:
            return exact
    return _math_equal(norm_a, norm_b, deadline)


def _number_against_constant(
    value: Fraction, text: str, tolerance: float | Fraction | None, deadline: float | None
) -> bool | None:
    """A number against a constant expression (``1.41421356`` against ``\\sqrt{2}``), exactly unless a
    tolerance is given: math-verify rounds to 6 decimals, which would accept that pair. ``None`` when
    ``text`` is not a constant expression (math-verify decides)."""
    key = (str(value), text, None if tolerance is None else str(tolerance))
    if key in _exact:
        return _exact[key]
    parsed = _math_parse(text, deadline)
    if not parsed:
        return None
    import sympy

    expression = parsed[0]
    if not isinstance(expression, sympy.Expr) or expression.free_symbols or _time_left(deadline) <= 0:
        return None
    from math_verify.utils import timeout

    def decide() -> bool:
        difference = expression - sympy.Rational(value.numerator, value.denominator)
        approximate = complex(sympy.N(difference, 40))
        if tolerance is not None:
            scale = max(abs(float(value)), abs(complex(sympy.N(expression, 40))))
            return abs(approximate) <= float(_as_fraction(tolerance)) * scale
        if abs(approximate) > 1e-30:
            return False
        return bool(sympy.simplify(difference) == 0)

    try:
        equal = timeout(timeout_seconds=_timeout(deadline))(decide)()
    except Exception:  # sympy raises for odd input; the timeout raises too
        logger.debug("could not compare %s with %r exactly", value, text, exc_info=True)
        return None if _time_left(deadline) > 0 else False
    _remember(_exact, key, equal)
    return equal


@lru_cache(maxsize=65536)
def _cheap_key(answer: str) -> AnswerKey | None:
    value = parse_number(answer)
    if value is not None:
        return ("number", value)
    normalised = normalize_answer(answer)
    if _PLAIN_WORDS.match(normalised):
        return ("text", normalised.casefold())
    colon = _colon_key(normalised)
    if colon is not None:
        return colon
    if _plain_only(normalised):
        return ("text", normalised.casefold())
    return None


def _sympy_key(parsed: tuple[Any, ...]) -> AnswerKey | None:
    """A key from math-verify's parse: a rational number by value, another expression by sympy's text."""
    import sympy

    expression = parsed[0]
    if isinstance(expression, sympy.Rational):  # Integer included; never a Float (that has no exact value)
        return ("number", Fraction(int(expression.p), int(expression.q)))
    if isinstance(expression, sympy.Basic) and expression.has(sympy.zoo, sympy.nan):
        return None  # a division by zero: not a value two different answers may share
    if isinstance(expression, sympy.Basic):
        return ("expr", f"sympy:{expression}")
    return None


def canonical_key(answer: str, *, deadline: float | None = None) -> AnswerKey:
    """A key for grouping: answers with equal keys are equivalent (:func:`answers_equivalent`).

    Numbers key by exact value and words by case-folded text, at once; anything else is parsed by
    ``math-verify`` (before ``deadline``), so ``x^2+1`` and ``1+x^2`` share a key, and ``\\sqrt{4}`` keys as
    the number 2. Past the deadline, or when it cannot parse, an expression keys by its case-folded text.
    """
    key = _cheap_key(answer)
    if key is not None:
        return key
    normalised = normalize_answer(answer)
    parsed = _math_parse(normalised, deadline)
    if parsed:
        key = _sympy_key(parsed)
        if key is not None:
            return key
    return ("expr", f"text:{normalised.casefold()}")


def needs_comparison(a: AnswerKey, b: AnswerKey) -> bool:
    """Whether answers with these different keys might still be equivalent: only when one is an expression
    (two numbers, two texts, or a number and a word are decided by their keys alone)."""
    return a != b and "expr" in (a[0], b[0])
