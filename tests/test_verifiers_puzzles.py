"""Exact puzzle checkers: Game of 24 and sum/product, with partial credit for search."""

from __future__ import annotations

from fractions import Fraction

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkloop.runtime.result import Candidate
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.puzzles import Game24, SumProduct, evaluate_expression, solve_24


def verdict(verifier: object, text: str) -> Verdict:
    return anyio.run(verifier.verify, "q", Candidate(text=text))  # type: ignore[attr-defined]


def test_evaluate_expression_is_exact_and_lists_the_numbers() -> None:
    assert evaluate_expression("(7 - 8/8) * 4 = 24") == (Fraction(24), [7, 8, 8, 4])
    assert evaluate_expression("8 ÷ (3 − 8 ÷ 3)") == (Fraction(24), [8, 3, 8, 3])
    assert evaluate_expression("6 x 4") == (Fraction(24), [6, 4])
    for bad in ("__import__('os')", "2 ** 10", "1 / 0", "", "abs(-3)"):
        with pytest.raises(ValueError):
            evaluate_expression(bad)


def test_game24_accepts_only_each_number_once_making_24() -> None:
    check = Game24([4, 7, 8, 8])
    assert verdict(check, "Steps...\nAnswer: (7 - 8 / 8) * 4").accepted
    assert verdict(check, "(7 - 8 / 8) * 4 = 24").accepted  # no Answer line: the last arithmetic line
    wrong = verdict(check, "Answer: 4 * 7 - 8 + 8")
    assert wrong.feedback == "4 * 7 - 8 + 8 = 28, not 24." and 0.5 < wrong.score < 1
    missing = verdict(check, "Answer: 4 * 6")
    assert missing.feedback == (
        "Use each of 4, 7, 8, 8 exactly once: it does not use 7, 8, 8; it uses 6, which is not allowed."
    )
    partial = verdict(check, "8 / 8 = 1")
    assert not partial.accepted and partial.score > missing.score  # a step with given numbers is progress
    assert verdict(check, "I like puzzles").score == 0.0


@settings(max_examples=40)
@given(st.lists(st.integers(1, 13), min_size=4, max_size=4))
def test_every_solution_the_solver_finds_passes_the_checker(numbers: list[int]) -> None:
    solution = solve_24(numbers)
    if solution is not None:
        assert verdict(Game24(numbers), f"Answer: {solution}").accepted


def test_solver_knows_unsolvable_sets() -> None:
    assert solve_24([1, 1, 1, 1]) is None
    assert solve_24([3, 3, 8, 8]) is not None  # 8 / (3 - 8 / 3): needs fractions


def test_sum_product() -> None:
    classic = SumProduct(3)
    assert verdict(classic, "Answer: 1, 2 and 3").accepted
    assert verdict(classic, "Answer: 1 + 2 + 3 = 6").accepted  # the sum shown after '=' is not a fourth number
    assert verdict(classic, "Answer: 1 + 2 + 4 = 7").feedback == (
        "1 + 2 + 4 = 7 and 1 × 2 × 4 = 8, but the sum must equal the product."
    )
    assert verdict(classic, "Answer: 1, 2").feedback == "Give exactly 3 positive whole numbers; the answer has 2."
    assert not verdict(classic, "Answer: 0, 0, 0").accepted
    assert not verdict(SumProduct(3, distinct=True), "Answer: 2, 2, 2").accepted
    given_sum = SumProduct(3, total=14, product=100)
    assert verdict(given_sum, "Answer: 5, 4, 5").accepted
    assert "the sum must be 14 and the product must be 100" in (verdict(given_sum, "Answer: 1, 2, 3").feedback or "")
