"""A number within a tolerance."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.numeric import NumberWithin, number_in


def verdict(verifier: object, text: str, answer: str | None = None) -> Verdict:
    return anyio.run(verifier.verify, "q", Candidate(text=text, answer=answer))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("2", 2.0),
        ("$1,200", 1200.0),
        ("3/4", 0.75),
        ("pH = 2.0", 2.0),
        ("about 1e-3", 1e-3),
        (None, None),
        ("none", None),
    ],
)
def test_number_in(answer: str | None, value: float | None) -> None:
    assert number_in(answer) == value


def test_number_within_tolerance() -> None:
    check = NumberWithin(3.0, tolerance=0.05)
    assert verdict(check, "Answer: 3.04").accepted
    far = verdict(check, "Answer: 2")
    assert far.feedback == "The answer 2 is not within 0.05 of the correct value. Recompute it step by step."
    assert far.score < verdict(check, "Answer: 2.9").score < 1
    assert verdict(check, "no number here").feedback is not None and not verdict(check, "no number").accepted
    assert verdict(NumberWithin(200, tolerance=0.01, relative=True), "Answer: 201.9").accepted


@given(st.floats(-1e6, 1e6), st.floats(0, 100), st.floats(-200, 200))
def test_accepts_exactly_the_answers_within_the_tolerance(value: float, tolerance: float, offset: float) -> None:
    answer = value + offset
    accepted = verdict(NumberWithin(value, tolerance=tolerance), "x", answer=repr(answer)).accepted
    assert accepted == (abs(float(repr(answer)) - value) <= tolerance)


def test_bad_reference_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="NumberWithin needs a finite value"):
        NumberWithin(float("nan"))
