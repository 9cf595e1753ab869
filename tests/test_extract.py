"""Answer extraction, normalisation and equivalence: the one module every strategy and verifier shares."""

from __future__ import annotations

import threading
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from thinkloop.verifiers.extract import answers_equivalent, extract_answer, normalize_answer, parse_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"So the result is $\boxed{42}$.", "42"),
        (r"First \boxed{1}, then \boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt{2}}{2}"),
        (r"\boxed{\left\{1, 2\right\}}", r"\{1, 2\}"),
        (r"Answer: \boxed{x^{2}+1}", "x^{2}+1"),
        ("Step 1: 3 + 4 = 7.\nAnswer: 7", "7"),
        ("**Answer:** $1,200", "1200"),
        ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
        ("The answer is 42, because 6 * 7 = 42.", "42"),
        ("So the answer is 9 apples.", "9"),
        ("The answer is: B", "B"),
        ("Hence the answer is (C).", "C"),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("Answer:\n\n  17", "17"),
        ("She has 5 now, no wait: 6.", "6"),
        ("The temperature drops to -4 degrees", "-4"),
        ("5-3", "3"),
        ("It costs 3.5.", "3.5"),
        ("Answer: 42 (6 x 7)", "42"),
        ("The answer is 5 since 2 + 3 = 5.", "5"),
        # A list or an expression is not "a number and an explanation".
        ("Answer: $3, 5, 7$", "3, 5, 7"),
        ("The answer is 3 and 5.", "3 and 5"),
        ("Answer: 2(x+1)", "2(x+1)"),
        ("Answer: $2 (x+1)$", "2 (x+1)"),
    ],
)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "no numbers here", "Answer: ", "Answer: ..."])
def test_extract_answer_none_when_there_is_none(text: str) -> None:
    assert extract_answer(text) is None


def test_a_marker_with_nothing_after_falls_back_to_the_last_number() -> None:
    assert extract_answer("We get 12 in the end.\nAnswer:") == "12"


def test_the_last_statement_wins_over_an_earlier_one() -> None:
    assert extract_answer("The answer is 5.\nWait, I made an error.\nAnswer: 6") == "6"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,200", "1200"),
        (r"\$1,200.50", "1200.5"),
        ("1200 dollars", "1200"),
        ("9 apples", "9"),
        ("9 (apples)", "9"),
        ("5 m/s", "5"),
        ("3 cm^2", "3"),
        ("14.0", "14"),
        ("0.50", "0.5"),
        (".5", "0.5"),
        ("+3", "3"),
        ("\u22123", "-3"),
        ("-0", "0"),
        ("3/4", "3/4"),
        ("6/8", "3/4"),
        ("4/2", "2"),
        (r"\frac{3}{4}", "3/4"),
        (r"\dfrac{6}{8}", "3/4"),
        (r"\frac34", "3/4"),
        (r"-\frac{3}{4}", "-3/4"),
        ("50%", "50"),
        (r"50\%", "50"),
        ("50 percent", "50"),
        (r"90^\circ", "90"),
        ("42.", "42"),
        ("$5$.", "5"),
        ("$x$", "x"),
        (r"\(x+1\)", "x+1"),
        ("**42**", "42"),
        (r"\boxed{\frac{1}{2}}", "1/2"),
        (r"\text{apples}", "apples"),
        (r"1\,200", "1200"),
        ("1{,}200", "1200"),
        ("x = 5", "5"),
        ("(A)", "A"),
        ("A", "A"),
        ("a", "a"),
        ("The", "The"),
        ("Yes.", "Yes"),
        # Not numbers: left as they are.
        ("1,2", "1,2"),
        ("(1, 2)", "(1, 2)"),
        ("2 pi", "2 pi"),
        ("5x", "5x"),
        ("3/0", "3/0"),
        (r"\sqrt{2}", r"\sqrt{2}"),
        ("...", "..."),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1,200", "1200.0"),
        ("$1,200", "1200 dollars"),
        ("0.75", "3/4"),
        ("0.75", r"\frac{3}{4}"),
        ("25%", "25"),
        (r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2"),
        (r"2\pi", r"\pi \cdot 2"),
        ("x^2+1", "1+x^2"),
        (r"\left(1,2\right)", "(1, 2)"),
        ("A", "a"),
        ("(B)", "B"),
        ("yes", "Yes."),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    assert answers_equivalent(a, b)
    assert answers_equivalent(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1000000", "1000001"),
        ("0.33", "1/3"),
        ("0.333333", "1/3"),  # a rounded decimal is not the fraction unless a tolerance is given
        ("A", "B"),
        ("five", "5"),
        ("x^2+1", "x^2-1"),
        ("", ""),
        (None, None),
        ("3", None),
    ],
)
def test_not_equivalent(a: str | None, b: str | None) -> None:
    assert not answers_equivalent(a, b)


def test_parse_number() -> None:
    assert parse_number("$1,200.50") == Fraction(240100, 200)
    assert parse_number(r"-\frac{3}{4}") == Fraction(-3, 4)
    assert parse_number("x + 1") is None


def test_latex_equivalence_works_outside_the_main_thread() -> None:
    """math-verify's timeouts use signal.alarm, which only the main thread may set: elsewhere it must still
    answer (without a timeout) rather than raise."""
    results: list[object] = []

    def work() -> None:
        try:
            results.append(answers_equivalent(r"\frac{\sqrt{3}}{3}", r"1/\sqrt{3}"))
            results.append(answers_equivalent(r"\sqrt{5}", r"\sqrt{6}"))
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == [True, False]


# --- properties ---------------------------------------------------------------------------------------

amounts = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(Decimal),
    st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
)


def _canonical(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


@given(
    amounts,
    st.sampled_from(["{}", "${}", "{} dollars", "{} (apples)", "**{}**", r"\boxed{{{}}}", "$\\${}$"]),
    st.sampled_from(["The answer is {}.", "Answer: {}", "So in total we get {}", "#### {}"]),
)
@example(Decimal("1200"), "${}", "Answer: {}")
@example(Decimal("-14.00"), "{}", "The answer is {}.")
def test_a_formatted_number_round_trips(value: Decimal, shape: str, sentence: str) -> None:
    formatted = shape.format(f"{value:,}")
    text = sentence.format(formatted)
    if shape.startswith(r"\boxed") or "answer" in sentence.lower() or "####" in sentence:
        assert extract_answer(text) == _canonical(value)
    assert answers_equivalent(extract_answer(text), str(value))


@given(st.text(max_size=40))
@example("$$5$$.")
@example(r"\boxed{\boxed{3/6}}")
@example("x = (A)")
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@given(st.text(min_size=1, max_size=40).filter(lambda s: any(ch.isalnum() for ch in s)))
def test_normalisation_never_empties_an_answer(text: str) -> None:
    assert normalize_answer(text) != ""


@given(st.fractions(max_denominator=50), st.fractions(max_denominator=50))
def test_numeric_equivalence_is_symmetric(a: Fraction, b: Fraction) -> None:
    left, right = f"{a.numerator}/{a.denominator}", f"{b.numerator}/{b.denominator}"
    assert answers_equivalent(left, right) == answers_equivalent(right, left) == (a == b)


_PIECES = st.sampled_from(
    [
        "Answer",
        "answer",
        "ANSWER",
        "Final Answer",
        "**Answer:**",
        "answers",
        "myanswer",
        ":",
        "：",
        " ",
        "\n",
        ".",
        "*",
        "42",
        "-7",
        "0.5",
        "3.50",
        "007",
        "-0",
        "1,200",
        "#### 9",
        "\\boxed{5}",
        "<think>",
        "</think>",
        "is",
        "x",
        "ſ",
        "(",
        "?",
    ]
)


@given(st.lists(_PIECES, max_size=12).map("".join), st.text(max_size=80))
@example("", "6 * 7 = 42. Answer: 42")
@example("", "#### 7\nAnswer: 42.")
@example("", "\\boxed{7} so Answer: 42")
@example("", "(answer: 42")
@example("", "Answer: 007")
@example("Answer: 3.50", "")
@example("answer:-0.", "")
def test_the_stated_last_shortcut_agrees_with_the_full_search(tail: str, head: str) -> None:
    """extract_answer reads "... Answer: 42" off the reply's tail; it must give what the full search gives."""
    from thinkloop.verifiers.extract import _after_reasoning, _search

    text = head + tail
    visible = _after_reasoning(text) if text else None
    assert extract_answer(text) == (_search(visible) if visible else None)
