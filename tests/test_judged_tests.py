"""How test asserts are split between the sandbox and the caller, and how the caller reads what came back.

No sandbox here: the harness's encoder is run in this process (it is plain Python), and reports are written by
hand, as a hostile program could write them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.verifiers.judged_tests import plan_tests
from thinkloop.verifiers.plain_data import ENCODER_SOURCE, NotPlainData, decode

NONCE = "[thinkloop-values-0123456789abcdef]"
_encoder: dict[str, Any] = {}
exec(ENCODER_SOURCE, _encoder)  # the sandbox's own encoder, run here to check the round trip
plain = _encoder["_tl_plain"]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
hashable = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.sets(hashable, max_size=4)
        | st.dictionaries(hashable, inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0 is not True; a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_plain_values_cross_the_boundary_unchanged(value: Any) -> None:
    assert same(decode(json.loads(json.dumps(plain(value)))), value)


def test_non_finite_floats_cross_too() -> None:
    back = decode(json.loads(json.dumps(plain([math.inf, -math.inf, math.nan]))))
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2])


@pytest.mark.parametrize(
    "value", [object(), type("Sly", (int,), {})(3), [1, type("L", (list,), {})()], range(3), iter([1]), 1j]
)
def test_anything_else_is_refused_in_the_sandbox(value: Any) -> None:
    with pytest.raises(TypeError, match="not plain data"):
        plain(value)


@pytest.mark.parametrize(
    "data",
    [
        {"tuple": [1], "x": 2},
        {"eval": "1"},
        {"set": [[1]]},
        {"dict": [[[1], 2]]},
        {"bytes": "zz"},
        {"float": "1e5"},
        {"dict": [1]},
        [{}],
    ],
)
def test_the_decoder_refuses_anything_that_is_not_tagged_plain_data(data: Any) -> None:
    with pytest.raises(NotPlainData):
        decode(data)


def test_the_decoder_refuses_deep_nesting() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(NotPlainData, match="nested"):
        decode(deep)


TESTS = (
    "import math\nfrom math import isclose\n"
    "expected = [1, 2, 3]\ndata = [3, 1, 2]\n"
    "assert sort(data) == expected\n"
    "assert abs(area(1) - 3.14159) < 1e-3\n"
    "assert isclose(area(2), 12.566, rel_tol=1e-3)\n"
    "assert isinstance(area(0), float) and not area(0)\n"
    "assert first(data)[0] == 3\n"
    "assert maybe() is None\n"
)


def report(*entries: Any) -> str:
    return f"noise\n{NONCE}{json.dumps(list(entries))}\nmore noise"


def value(index: int, data: Any) -> list[Any]:
    return [index, "value", json.dumps(plain(data))]


def test_expected_values_stay_with_the_caller_and_probes_are_only_the_programs_part() -> None:
    plan = plan_tests(TESTS)
    assert plan.judged
    assert plan.probes == ["sort([3, 1, 2])", "area(1)", "area(2)", "area(0)", "area(0)", "first([3, 1, 2])", "maybe()"]
    harness = plan.harness(NONCE)
    for hidden in ("expected", "[1, 2, 3]", "3.14159", "12.566", "1e-3", "0.001"):
        assert hidden not in harness, hidden


def test_the_caller_judges_what_came_back() -> None:
    plan = plan_tests(TESTS)
    good = report(
        value(0, [1, 2, 3]),
        value(1, math.pi),
        value(2, 4 * math.pi),
        value(3, 0.0),
        value(4, 0.0),
        value(5, (3, 1)),
        value(6, None),
    )
    outcome = plan.judge(good, NONCE)
    assert outcome.problem is None and [r.passed for r in outcome.results] == [True] * 6
    bad = report(
        value(0, (1, 2, 3)),
        value(1, 3.0),
        value(2, "12.566"),
        value(3, 0),
        [4, "raised", "ValueError: x"],
        [5, "unplain", "a Foo, which is not plain data"],
        value(6, 0),
    )
    results = plan.judge(bad, NONCE).results
    assert [r.passed for r in results] == [False] * 6
    assert results[0].detail == "got (1, 2, 3), expected [1, 2, 3]"  # a tuple is not a list
    assert results[1].detail == f"{abs(3.0 - 3.14159)!r} < 0.001 is false"
    assert results[2].detail.startswith("raised TypeError")
    assert results[3].detail == "raised ValueError: x"
    assert results[4].detail == "returned a Foo, which is not plain data"


@pytest.mark.parametrize(
    ("stdout", "problem"),
    [
        ("2 of 2 tests passed", "ended before reporting"),
        (report() + "\n" + report(), "more than once"),
        (report(value(0, 1)), "reported 1 of the tests' 7 values"),
        (report(*[value(i, 1) for i in range(7)], value(0, 1)), "not plain data"),
        (f'{NONCE}[[0, "value", "1e99999"]]', "reported 1 of"),
        (f'{NONCE}{{"a": 1}}', "not plain data"),
        (f"{NONCE}" + "[" * 100_000, "not plain data"),
        (f'{NONCE}[[-1, "setup", "ImportError: x"]]', "failed in the tests' setup"),
        (f'{NONCE}[[99, "value", "1"]]', "not plain data"),
    ],
)
def test_a_report_that_is_not_what_the_harness_writes_is_a_problem_never_an_exception(
    stdout: str, problem: str
) -> None:
    outcome = plan_tests(TESTS).judge(stdout, NONCE)
    assert outcome.problem is not None and problem in outcome.problem and outcome.results == ()


@given(st.text())
def test_judging_never_raises(stdout: str) -> None:
    plan = plan_tests(TESTS)
    plan.judge(stdout, NONCE)
    plan.judge(NONCE + stdout, NONCE)


@pytest.mark.parametrize(
    "tests",
    [
        "def helper(x):\n    return x\nassert f(1) == helper(1)\n",
        "def check(f, x):\n    assert f(x) == 1\ncheck(f, 1)\nassert f(1) == 1\n",
        "assert f(1) == sum([0, 1])\n",
        "data = [1]\ndata.append(2)\nassert f(data) == 2\n",
    ],
)
def test_tests_the_caller_cannot_judge_alone_are_marked_as_trusting_the_program(tests: str) -> None:
    assert not plan_tests(tests).judged


def test_arithmetic_on_what_came_back_is_bounded() -> None:
    plan = plan_tests("assert f(1) * 3 == 'xxx'\nassert f(2) % 2 == 0\n")
    outcome = plan.judge(report(value(0, "x" * 1000), value(1, "%s" * 10)), NONCE)
    assert [r.detail.split(":")[0] for r in outcome.results] == ["raised TypeError"] * 2


def test_the_humaneval_form_is_judged_like_top_level_asserts() -> None:
    tests = (
        "def check(candidate):\n    '''The tests.'''\n"
        "    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n\n"
        "check(add)\n"
    )
    plan = plan_tests(tests)
    assert plan.judged and plan.probes == ["add(2, 3)", "add(0, 0)"]
    assert [a.label for a in plan.asserts] == ["assert add(2, 3) == 5", "assert add(0, 0) == 0"]
    # a checker used any other way stays as written (and is trusted)
    kept = plan_tests(tests + "helper = check\nassert add(1, 1) == 2\n")
    assert not kept.judged and len(kept.asserts) == 1
