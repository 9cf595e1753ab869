"""Number reading never merges different values, and reads one value the same in every form (issue 25).

A property suite over many spellings of a number: plain, thousands grouped by commas, spaces or thin spaces,
an exponent (``1.2e4``, ``1.2 \\times 10^{4}``), currency and units, trailing zeros, fractions. Distinct values
never compare equal (nor share a vote key); equal values in different forms always do. Extraction reads each
form whole out of a sentence.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from thinkloop.verifiers.equivalence import answers_equivalent, canonical_key
from thinkloop.verifiers.extract import extract_answer
from thinkloop.verifiers.normalize import parse_number

_SPACES = (" ", "\u2009", "\u202f")


def _grouped(digits: str, separator: str) -> str:
    head = len(digits) % 3 or 3
    return separator.join([digits[:head], *(digits[i : i + 3] for i in range(head, len(digits), 3))])


def _forms(value: Fraction) -> list[str]:
    """Spellings of ``value`` a model writes (a terminating decimal or an integer here)."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    decimal = Decimal(magnitude.numerator) / Decimal(magnitude.denominator)
    plain = format(decimal.normalize(), "f")
    whole, _, fraction = plain.partition(".")
    tail = f".{fraction}" if fraction else ""
    forms = [f"{sign}{plain}", f"{sign}{plain}{'' if tail else '.0'}0"]
    if len(whole) > 3:
        forms.append(f"{sign}{_grouped(whole, ',')}{tail}")
        forms += [f"{sign}{_grouped(whole, space)}{tail}" for space in _SPACES]
    digits = decimal.normalize().as_tuple()
    mantissa = "".join(map(str, digits.digits))
    exponent = digits.exponent + len(mantissa) - 1
    scientific = mantissa[0] + (f".{mantissa[1:]}" if len(mantissa) > 1 else "")
    forms += [
        f"{sign}{scientific}e{exponent}",
        f"{sign}{scientific}E{exponent:+d}",
        f"{sign}{scientific} \\times 10^{{{exponent}}}",
    ]
    if not sign:
        forms += [f"${forms[0]}", f"{forms[0]} dollars"]
    if magnitude.denominator == 1:
        forms.append(f"{sign}{whole}/1")
    return forms


values = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**12).map(Fraction),
    st.builds(
        lambda n, d: Fraction(n, 10**d),
        st.integers(min_value=-(10**7), max_value=10**9),
        st.integers(min_value=1, max_value=4),
    ),
    st.sampled_from(
        [
            Fraction(0),
            Fraction(12000),
            Fraction(345000),
            Fraction(2000),
            Fraction(300),
            Fraction(10**6),
            Fraction(1000),
            Fraction(12500),
            Fraction(500),
        ]
    ),
)
forms_of = st.integers(min_value=0, max_value=64)


def _pick(value: Fraction, index: int) -> str:
    forms = _forms(value)
    return forms[index % len(forms)]


@settings(max_examples=400, deadline=None)
@given(values, values, forms_of, forms_of)
@example(Fraction(2000), Fraction(300), 5, 5)  # 2e3 / 3e2
@example(Fraction(12000), Fraction(0), 3, 0)  # "12 000" / "0"
@example(Fraction(345000), Fraction(0), 3, 0)
@example(Fraction(12000), Fraction(345000), 3, 3)
def test_distinct_values_never_compare_equal(a: Fraction, b: Fraction, i: int, j: int) -> None:
    x, y = _pick(a, i), _pick(b, j)
    if a == b:
        return
    assert not answers_equivalent(x, y), (x, y)
    assert canonical_key(x) != canonical_key(y), (x, y)


@settings(max_examples=400, deadline=None)
@given(values, forms_of, forms_of)
@example(Fraction(10**6), 0, 5)  # 1000000 / 1e6
def test_one_value_in_any_two_forms_compares_equal(value: Fraction, i: int, j: int) -> None:
    x, y = _pick(value, i), _pick(value, j)
    assert parse_number(x) == value, x
    assert answers_equivalent(x, y), (x, y)
    assert canonical_key(x) == canonical_key(y), (x, y)


@settings(max_examples=300, deadline=None)
@given(values, forms_of)
def test_extraction_reads_each_form_whole(value: Fraction, i: int) -> None:
    form = _pick(value, i)
    stated = extract_answer(f"Let me add it up.\nAnswer: {form}")
    assert stated is not None and parse_number(stated) == value, (form, stated)
    if "\\times" not in form:  # a power of ten written out is read when stated, not as a last number
        last = extract_answer(f"So the total is {form}.")
        assert last is not None and parse_number(last) == value, (form, last)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("So the total is 1 000.", "1000"),
        ("12 500 dollars", "12500"),
        ("It costs 12\u2009500 dollars.", "12500"),
        ("The distance is 1e6 meters.", "1000000"),
        ("We get 2e3.", "2000"),
    ],
)
def test_the_issue_s_sentences(text: str, answer: str) -> None:
    assert extract_answer(text) == answer


@settings(max_examples=200, deadline=None)
@given(st.tuples(st.integers(0, 23), st.integers(0, 59)), st.tuples(st.integers(0, 23), st.integers(0, 59)))
@example((4, 0), (5, 0))
def test_clock_times_compare_part_by_part(a: tuple[int, int], b: tuple[int, int]) -> None:
    x, y = f"{a[0]}:{a[1]:02d}", f"{b[0]}:{b[1]:02d}"
    assert answers_equivalent(x, y) == (a == b)
    assert (canonical_key(x) == canonical_key(y)) == (a == b)
    read_x, read_y = extract_answer(f"The meeting is at {x}."), extract_answer(f"They meet at {y}")
    assert (read_x, read_y) == (x, y)  # read whole: "4:00" is never the answer 0


@pytest.mark.parametrize(("a", "b"), [("12 00", "0"), ("1 2", "2"), ("2e3+1", "2*E*3+1"), ("1/0", "2/0")])
def test_text_math_verify_would_misread_is_compared_as_written(a: str, b: str) -> None:
    assert not answers_equivalent(a, b)
    assert canonical_key(a) != canonical_key(b)


def test_a_huge_exponent_is_not_read_as_a_number() -> None:
    assert parse_number("1e999999999") is None
