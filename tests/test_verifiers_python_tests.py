"""Python tests in the program sandbox: invented imports, syntax errors, failing asserts, all named."""

from __future__ import annotations

import re

import anyio
import pytest

from sandbox_harness import working_sandbox
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.judged_tests import plan_tests
from thinkloop.verifiers.program import ProgramVerifier
from thinkloop.verifiers.python_tests import PythonTests, unresolved_imports

TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert isinstance(add(0, 0), int)\n"


@pytest.fixture(scope="module")
def sandbox() -> ProgramVerifier:
    return working_sandbox()


def verdict(check: PythonTests, text: str) -> Verdict:
    return anyio.run(check.verify, "q", Candidate(text=text))


def test_passing_code_is_accepted(sandbox: ProgramVerifier) -> None:
    result = verdict(PythonTests(TESTS, sandbox=sandbox), "Here:\n```python\ndef add(a, b):\n    return a + b\n```")
    assert result.accepted and result.feedback == "3 of 3 tests passed"


def test_each_failing_test_comes_back_with_what_it_got(sandbox: ProgramVerifier) -> None:
    result = verdict(PythonTests(TESTS, sandbox=sandbox), "```python\ndef add(a, b):\n    return a * b\n```")
    assert not result.accepted
    assert result.feedback is not None
    assert result.feedback.splitlines()[:3] == [
        "1 of 3 tests passed.",
        "FAILED assert add(2, 3) == 5: got 6, expected 5",
        "FAILED assert add(-1, 1) == 0: got -1, expected 0",
    ]
    raised = verdict(PythonTests(TESTS, sandbox=sandbox), "def add(a, b):\n    raise ValueError('nope')")
    assert "FAILED assert add(2, 3) == 5: raised ValueError: nope" in (raised.feedback or "")
    assert raised.score < result.score


def test_an_invented_library_is_named_before_anything_runs(sandbox: ProgramVerifier) -> None:
    result = verdict(
        PythonTests(TESTS, sandbox=sandbox),
        "import fastmath_pro\nfrom os import path\ndef add(a, b):\n    return fastmath_pro.add(a, b)",
    )
    assert result.feedback == (
        "The program imports 'fastmath_pro', which does not exist here. Use only the Python standard library."
    )
    assert unresolved_imports("import os, json\nfrom collections import abc\nimport anyio") == []
    assert unresolved_imports("import not_a_module_xyz.sub\nfrom . import sibling") == ["not_a_module_xyz"]


def test_syntax_errors_and_crashes_are_rejections_that_say_why(sandbox: ProgramVerifier) -> None:
    check = PythonTests(TESTS, sandbox=sandbox)
    bad = verdict(check, "def add(a, b) return a")
    assert bad.feedback == "The program is not valid Python (line 1: expected ':')."
    crashed = verdict(check, "print(undefined_name)\ndef add(a, b):\n    return a + b")
    assert crashed.feedback is not None and crashed.feedback.startswith("The program crashed (exit status 1).")
    assert "NameError" in crashed.feedback
    assert verdict(check, "").feedback == "There is no program. Write the function in a ```python block."


def test_a_program_that_never_ends_is_killed(sandbox: ProgramVerifier) -> None:
    check = PythonTests(TESTS, sandbox=ProgramVerifier(timeout=1))
    result = verdict(check, "def add(a, b):\n    while True:\n        pass")
    assert not result.accepted and "timed out after 1s" in (result.feedback or "")


def test_tests_must_be_python_with_an_assert() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("the tests are not valid Python (line 1:")):
        PythonTests("assert (")
    with pytest.raises(ConfigurationError, match="the tests have no assert statement"):
        PythonTests("x = 1")
    plan = plan_tests("import math\nassert math.pi > 3")
    assert plan.judged and plan.probes == []


@pytest.mark.parametrize(
    ("reply", "program"),
    [
        ("```python\ndef f(x):\n    return x\n```\nDone.", "def f(x):\n    return x\n"),
        ("Here's the code:\n```python\ndef f(x):\n    return x + 1\n", "def f(x):\n    return x + 1\n"),  # cut off
        ("Here's how:\ndef f(x):\n    return x\nThis works because it returns x.", "def f(x):\n    return x"),
        (
            "import math\ndef f(x):\n    return math.floor(x)\nprint(f('a",
            "import math\ndef f(x):\n    return math.floor(x)",
        ),
        ("I can't write code, it's prose.", ""),
    ],
)
def test_the_program_is_found_in_what_a_model_actually_writes(reply: str, program: str) -> None:
    from thinkloop.verifiers.python_tests import program_in

    assert program_in(reply) == program


def test_prose_without_code_is_no_program(sandbox: ProgramVerifier) -> None:
    assert verdict(PythonTests(TESTS, sandbox=sandbox), "It's easy, just add them.").feedback == (
        "There is no program. Write the function in a ```python block."
    )
