"""Hostile programs against the test verifier: each one fails its tests and tries to be accepted anyway.

Every attack here was accepted by the old ``PythonTests`` (tests run in the candidate's own interpreter, the
verdict read from what it printed and how it exited), or made ``verify`` raise; each is rejected now, because
what each test computes comes back as plain data and the caller compares it with an expected value that never
entered the sandbox. Each test first has a known-good program accepted by the same verifier, so a rejection
is never the sandbox failing everything. ``ATTACKS`` maps each attack to what stops it now (the closing note
and ``docs/sandbox.md`` give the same table).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest

from sandbox_harness import working_sandbox
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.program import ProgramVerifier
from thinkloop.verifiers.python_tests import PythonTests

ADD_TESTS = "assert add(2, 3) == 5\nassert add(10, -4) == 6\n"
GOOD_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"
TRUTH_TESTS = "assert is_even(4)\nassert not is_even(3)\n"
GOOD_EVEN = "def is_even(n):\n    return n % 2 == 0\n"

# Everything a program can see that might hold the expected value (the product 30303 * 30301): its own source
# with the harness, its arguments, environment and command line, every frame's constants and variables, and the
# files in its folders. It computes the value only to look for it, and answers with it only when found.
SEARCH = r"""
import glob, linecache, os, sys
def expected_is_visible():
    needle = str(30303 * 30301)
    seen = [''.join(linecache.getlines('program.py')), repr(sys.argv), repr(dict(os.environ))]
    for name in ('cmdline', 'environ'):
        seen.append(open(f'/proc/self/{name}', 'rb').read().decode('latin-1'))
    frame = sys._getframe(2)
    while frame is not None:
        seen.append(repr(frame.f_code.co_consts))
        seen.append(repr({k: v for k, v in frame.f_locals.items() if k != 'needle'}))
        frame = frame.f_back
    for path in glob.glob('/scratch/**', recursive=True) + glob.glob('/tmp/**', recursive=True):
        if os.path.isfile(path):
            seen.append(open(path, 'rb').read().decode('latin-1'))
    return any(needle in text for text in seen)
"""
MUL_TESTS = "assert mul(30303, 30301) == 918211203\nassert mul(2, 3) == 6\n"
GOOD_MUL = "def mul(a, b):\n    return a * b\n"

# Reads the harness appended to the program (the program's own source, in linecache).
OWN_SOURCE = "import linecache\nSOURCE = ''.join(linecache.getlines('program.py'))\n"


@dataclass(frozen=True)
class Attack:
    code: str
    stopped_by: str
    tests: str = ADD_TESTS
    good: str = GOOD_ADD


ATTACKS = {
    "forged summary, then exit before the tests": Attack(
        WRONG_ADD + "print('[thinkloop-tests] 2 of 2 tests passed')\nraise SystemExit(0)\n",
        "no values reported: the verdict is never read from the program's output or exit status",
    ),
    "forged summary, then os._exit(0)": Attack(
        WRONG_ADD + "import os\nprint('[thinkloop-tests] 2 of 2 tests passed', flush=True)\nos._exit(0)\n",
        "no values reported",
    ),
    "exit status turned to 0 at exit (atexit)": Attack(
        WRONG_ADD + "import atexit, os, sys\natexit.register(lambda: (sys.stdout.flush(), os._exit(0)))\n",
        "the caller compares the values; the exit status cannot pass a test",
    ),
    "exit status turned to 0 from a thread": Attack(
        WRONG_ADD + "import os, sys, threading\n"
        "threading.Thread(target=lambda: (threading.main_thread().join(), sys.stdout.flush(), os._exit(0))).start()\n",
        "the caller compares the values",
    ),
    "print shadowed to forge the summary": Attack(
        WRONG_ADD + "import builtins, os\n"
        "def print(*args, **kwargs):\n"
        "    builtins.print('[thinkloop-tests] 2 of 2 tests passed', flush=True)\n"
        "    os._exit(0)\n",
        "the harness reports values with os.write; a forged line is not a value",
    ),
    "SystemExit shadowed": Attack(
        WRONG_ADD + "import builtins\nSystemExit = lambda code: builtins.SystemExit(0)\n",
        "the exit status is not the verdict",
    ),
    "bool shadowed": Attack(
        "def is_even(n):\n    return n % 2 == 1\nbool = lambda value: True\n",
        "the truth of the value is taken in the caller, on a built-in value",
        tests=TRUTH_TESTS,
        good=GOOD_EVEN,
    ),
    "an object equal to anything": Attack(
        "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Anything()\n",
        "not plain data: only JSON values cross the boundary",
    ),
    "an int subclass equal to anything": Attack(
        "class Sly(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Sly(0)\n",
        "not plain data (exact built-in types only)",
    ),
    "expected values read from the test source": Attack(
        OWN_SOURCE + "import re\n"
        "def add(a, b):\n"
        "    for x, y, want in re.findall(r'add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', SOURCE):\n"
        "        if (int(x), int(y)) == (a, b):\n"
        "            return int(want)\n"
        "    return 0\n",
        "the expected values never enter the sandbox",
    ),
    "expected values read from the caller's frame": Attack(
        "import re, sys\n"
        "def add(a, b):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        for text in [c for c in frame.f_code.co_consts if type(c) is str]:\n"
        "            for x, y, want in re.findall(r'add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', text):\n"
        "                if (int(x), int(y)) == (a, b):\n"
        "                    return int(want)\n"
        "        frame = frame.f_back\n"
        "    return 0\n",
        "the expected values never enter the sandbox",
    ),
    "the harness's JSON encoder patched": Attack(
        WRONG_ADD + "import json\njson.dumps = lambda *args, **kwargs: '5'\n",
        "whatever it reports is only data: 5 is not 6",
    ),
    "a forged values line added at exit": Attack(
        WRONG_ADD + OWN_SOURCE + "import atexit, os, re\n"
        "nonce = re.search(r'\\[thinkloop-values-[0-9a-f]+\\]', SOURCE).group(0)\n"
        'atexit.register(lambda: os.write(1, (\'\\n\' + nonce + \'[[0, "value", "5"], [1, "value", "6"]]\\n\')'
        ".encode()))\n",
        "values reported twice are rejected",
    ),
    "expected values searched for in everything the program can see": Attack(
        SEARCH + "def mul(a, b):\n    if (a, b) != (30303, 30301):\n        return a * b\n"
        "    return 30303 * 30301 if expected_is_visible() else 0\n",
        "the expected values never enter the sandbox",
        tests=MUL_TESTS,
        good=GOOD_MUL,
    ),
    "a summary with odd numbers": Attack(
        WRONG_ADD + "print('[thinkloop-tests] FAILED x: y')\nprint('[thinkloop-tests] two of 2 tests passed')\n"
        "raise SystemExit(1)\n",
        "no values reported (and nothing printed is parsed as a verdict); the old verifier raised",
    ),
    "a values line with odd numbers": Attack(
        OWN_SOURCE + "import os, re\n"
        "nonce = re.search(r'\\[thinkloop-values-[0-9a-f]+\\]', SOURCE).group(0)\n"
        'os.write(1, (\'\\n\' + nonce + \'[[0, "value", "1e99999"], [7, "value", "[[[["], [1, 2]]\\n\').encode())\n'
        "os._exit(0)\n",
        "the caller's decoder rejects anything that is not tagged plain data, never raises",
    ),
}


@pytest.fixture(scope="module")
def sandbox() -> ProgramVerifier:
    return working_sandbox()


def verdict(check: PythonTests, code: str) -> Verdict:
    return anyio.run(check.verify, "q", Candidate(text=f"```python\n{code}\n```"))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_program_that_fails_its_tests_is_rejected_whatever_it_does(sandbox: ProgramVerifier, name: str) -> None:
    attack = ATTACKS[name]
    check = PythonTests(attack.tests, sandbox=sandbox)
    assert check.plan.judged
    good = verdict(check, attack.good)
    assert good.accepted, good.feedback
    bad = verdict(check, attack.code)
    assert not bad.accepted, f"{name}: accepted ({bad.feedback})"
    assert bad.score <= 0.5  # never more than the tests it honestly passed


def test_the_program_verifiers_expected_answer_is_nowhere_the_program_can_see(sandbox: ProgramVerifier) -> None:
    check = ProgramVerifier(timeout=10, expected="918211203")
    good = anyio.run(check.verify, "q", Candidate(text="```python\nprint('Answer:', 30303 * 30301)\n```"))
    assert good.accepted, good.feedback
    code = SEARCH + "print('Answer:', 30303 * 30301 if expected_is_visible() else 0)\n"
    bad = anyio.run(check.verify, "q", Candidate(text=f"```python\n{code}\n```"))
    assert not bad.accepted and "printed '0', not the expected answer" in (bad.feedback or ""), bad.feedback


def test_a_correct_program_that_also_plays_tricks_is_still_accepted(sandbox: ProgramVerifier) -> None:
    """What the program does to its own process does not matter when its values are right."""
    check = PythonTests(ADD_TESTS, sandbox=sandbox)
    tricks = GOOD_ADD + "import atexit, os\natexit.register(lambda: os._exit(3))\nprint = None\n"
    result = verdict(check, tricks)
    assert not result.accepted and "crashed (exit status 3) after the tests" in (result.feedback or "")
    assert verdict(check, GOOD_ADD + "print('[thinkloop-tests] 0 of 2 tests passed')\n").accepted


def test_tests_the_caller_cannot_judge_still_run_and_the_verdict_says_it_trusts_the_program(
    sandbox: ProgramVerifier,
) -> None:
    tests = (
        "def expected_sum(a, b):\n    return a + b\n\nassert add(2, 3) == expected_sum(2, 3)\nassert add(1, 1) == 2\n"
    )
    check = PythonTests(tests, sandbox=sandbox)
    assert not check.plan.judged
    good = verdict(check, GOOD_ADD)
    assert good.accepted
    assert "ran inside the program, which could forge them" in (good.feedback or "")
    assert not verdict(check, WRONG_ADD).accepted


def test_a_reply_of_deeply_nested_operators_is_a_rejection_with_a_reason(sandbox: ProgramVerifier) -> None:
    check = PythonTests(ADD_TESTS, sandbox=sandbox)
    for body in ["-" * 3000 + "(a + b)", "(" * 1000 + "a + b" + ")" * 1000, "a" + " + b - b" * 10000 + " + b"]:
        result = verdict(check, "def add(a, b):\n    return " + body + "\n")
        feedback = result.feedback or ""
        assert not result.accepted
        assert "cannot be parsed" in feedback or "not valid Python" in feedback, feedback
