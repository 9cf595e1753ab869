"""Checks as data and on the command line: one spelling, one clear error for a bad one."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import AllOf
from thinkloop.verifiers.constraints import Matches
from thinkloop.verifiers.numeric import NumberWithin
from thinkloop.verifiers.python_tests import PythonTests
from thinkloop.verifiers.spec import check_overrides, parse_check, verifier_from_check, verifier_from_checks
from thinkloop.verifiers.words import WordCount


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("words:12", {"kind": "words", "n": 12}),
        ("words:12+-1", {"kind": "words", "n": 12, "tolerance": 1}),
        ("number:7.2", {"kind": "number", "value": 7.2}),
        ("number:2.0±0.05", {"kind": "number", "value": 2.0, "tolerance": 0.05}),
        ("number: -1e-3 +- 1e-4", {"kind": "number", "value": -1e-3, "tolerance": 1e-4}),
        ("regex:^a,b:c$", {"kind": "regex", "pattern": "^a,b:c$"}),
        ("tests:t.py", {"kind": "tests", "file": "t.py"}),
        ("lowercase", {"kind": "lowercase"}),
        ("No_Commas", {"kind": "no-commas"}),
        ("ends-with:today", {"kind": "ends-with", "word": "today"}),
        ("keyword:sea*2", {"kind": "keyword", "word": "sea", "times": 2}),
        ("game24:4,7,8,8", {"kind": "game24", "numbers": [4, 7, 8, 8]}),
        ("sum-product:3", {"kind": "sum-product", "count": 3}),
    ],
)
def test_parse_check(text: str, check: dict[str, object]) -> None:
    assert parse_check(text) == check


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sentences:3", "unknown check 'sentences'; known checks: words, regex"),
        ("words", "check 'words': words needs an argument (words:...)"),
        ("words:twelve", "check 'words:twelve': 'twelve' is not a whole number"),
        ("number:abc", "check 'number:abc': 'abc' is not a number"),
        ("regex:(", "invalid regular expression '('"),
        ("tests:/no/such/file.py", "check tests: /no/such/file.py: no such file"),
    ],
)
def test_a_bad_check_is_one_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        verifier_from_check(text)


def test_checks_become_verifiers(tmp_path: Path) -> None:
    assert isinstance(verifier_from_check("words:3"), WordCount)
    assert isinstance(verifier_from_check({"kind": "number", "value": 1, "tolerance": 0.1}), NumberWithin)
    assert isinstance(verifier_from_check("regex:x"), Matches)
    tests = tmp_path / "test_add.py"
    tests.write_text("assert add(1, 2) == 3\n")
    assert isinstance(verifier_from_check(f"tests:{tests}"), PythonTests)
    both = verifier_from_checks(["words:3", "lowercase"])
    assert isinstance(both, AllOf) and len(both.verifiers) == 2
    assert verifier_from_checks([]) is None
    nested = verifier_from_check({"kind": "all", "checks": [{"kind": "lowercase"}, {"kind": "no-commas"}]})
    verdict = anyio.run(nested.verify, "q", Candidate(text="Answer: a, b"))
    assert not verdict.accepted and verdict.feedback == "Do not use commas; you used 1."
    with pytest.raises(ConfigurationError, match="is missing 'n'"):
        verifier_from_check({"kind": "words"})


def test_chain_of_thought_loops_when_given_a_check() -> None:
    check = verifier_from_check("words:3")
    assert check_overrides("cot", check) == {"max_rounds": 6, "temperature": 1.0}
    assert check_overrides("cot:max_rounds=2", check) == {"temperature": 1.0}
    assert check_overrides("cot:max-rounds=2,temperature=0", check) == {}
    assert check_overrides("bon:n=4", check) == {}
    assert check_overrides("cot", None) == {}


def test_a_bad_check_on_the_command_line_is_one_line_before_any_model_loads(capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.cli import main

    assert main(["ask", "Say hi.", "--check", "sentences:3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("thinkloop: error: unknown check 'sentences'; known checks: words, regex")
    assert err.count("\n") == 1


def test_bench_run_refuses_a_bad_check_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.cli import main

    code = main(
        [
            "bench",
            "run",
            "simulated",
            "--simulated",
            "0.5",
            "--limit",
            "2",
            "--strategy",
            "direct",
            "--check",
            "number:{answer}+-x",
            "--out",
            str(tmp_path / "r.jsonl"),
        ]
    )
    assert code == 1
    assert "check 'number:" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text().strip()
