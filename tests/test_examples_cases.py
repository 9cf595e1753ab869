"""The seed's cases as examples: each one's loop, driven by scripted replies, fails a check first and the check's
feedback (or the search) gets it to an accepted answer. (``test_examples.py`` runs them on the real model.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from thinkloop import ScriptedBackend
from thinkloop.types import ChatRequest

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def user_text(request: ChatRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


def test_word_count_revises_towards_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    backend = ScriptedBackend(
        ["The sea is wide and deep and blue and cold today.", "The sea is wide and deep and blue and cold."]
    )
    result = load("word_count").main(backend)
    out = capsys.readouterr().out
    assert "You wrote 11 words; it must be exactly 10: remove 1 word." in out
    assert result.stop_reason == "accepted" and result.usage.calls == 2
    # the second attempt was asked with the counter's feedback
    assert "remove 1 word" in user_text(backend.requests[1])
    assert "words=10" in out


def test_instruction_following_keeps_drawing_until_every_rule_holds(capsys: pytest.CaptureFixture[str]) -> None:
    replies = iter(
        [
            "The sea, is calm.",
            "the sea is calm",
            "the sea and the sea, today",
            "the sea is calm and the sea is blue today",
            "no",
            "no",
            "no",
            "no",
        ]
    )
    result = load("instruction_following").main(ScriptedBackend(lambda request: next(replies)))
    out = capsys.readouterr().out
    assert "Do not use commas; you used 1." in out and "Use the word 'sea' at least 2 times; you used it 1." in out
    assert result.candidate is not None and result.candidate.accepted
    assert "the sea is calm and the sea is blue today" in out


def puzzle_replies(request: ChatRequest) -> str:
    text = user_text(request)
    first = "(none yet)" in text
    if "24" in text:
        if first:
            puzzle_replies.level1 = getattr(puzzle_replies, "level1", 0) + 1  # type: ignore[attr-defined]
            level1 = ["8 / 8 = 1", "I like puzzles.", "Answer: 4 * 7 - 8 + 8"]
            return level1[(puzzle_replies.level1 - 1) % 3]  # type: ignore[attr-defined]
        return "Answer: (7 - 8 / 8) * 4"
    return "Answer: 1, 2, 3" if not first else "Try small numbers like 1, 2 and 3."


def test_number_puzzles_backtrack_and_stop_at_an_exact_solution(capsys: pytest.CaptureFixture[str]) -> None:
    game, sums = load("number_puzzles").main(ScriptedBackend(puzzle_replies))
    out = capsys.readouterr().out
    assert game.stop_reason == "accepted" and game.answer is not None
    assert game.candidate is not None and game.candidate.accepted
    kinds = [node.kind for node in game.graph.nodes()]
    assert kinds.count("backtrack") >= 1  # the wrong final answer's branch was abandoned
    assert any(node.status == "pruned" for node in game.graph.nodes())  # "I like puzzles." was not arithmetic
    assert "4 * 7 - 8 + 8 = 28, not 24" in str([n.data for n in game.graph.nodes() if n.kind == "verify"])
    assert sums.candidate is not None and sums.candidate.accepted
    assert "1 + 2 + 3 = 6 and 1 × 2 × 3 = 6" in out


def test_code_is_revised_until_the_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.exceptions import SandboxUnavailable
    from thinkloop.verifiers.program import ProgramVerifier

    try:
        import anyio

        anyio.run(ProgramVerifier().run, "pass")
    except SandboxUnavailable:
        pytest.skip("no network namespace for the sandbox here")
    backend = ScriptedBackend(
        [
            "```python\nimport parity\ndef is_even(n):\n    return parity.even(n)\n```",
            "```python\ndef is_even(n):\n    return n % 2 == 1\n```",
            "```python\ndef is_even(n):\n    return n % 2 == 0\n```",
        ]
    )
    result = load("code_tests").main(backend)
    out = capsys.readouterr().out
    assert "imports 'parity', which does not exist here" in out
    assert "assert is_even(4) == True: got False, expected True" in user_text(backend.requests[2])
    assert result.stop_reason == "accepted" and result.data["versions"] == 3
    assert "4 of 4 tests passed" in out


def test_ph_is_checked_against_the_checkers_own_computation(capsys: pytest.CaptureFixture[str]) -> None:
    replies = iter(["The pH is 2.\nAnswer: 2", "Answer: 11", "pH = -log10(0.001) = 3.00\nAnswer: 3.00"] * 3)
    module = load("ph")
    result = module.main(ScriptedBackend(lambda request: next(replies)))
    out = capsys.readouterr().out
    assert module.ph_of_strong_acid(0.001) == pytest.approx(3.0)
    assert "the checker's pH: 3.00" in out
    assert result.candidate is not None and result.candidate.accepted and result.answer == "3"


def judged_replies(request: ChatRequest) -> str:
    system = request.messages[0].content if request.messages[0].role == "system" else ""
    if "strict grader" in system:
        judged_replies.calls = getattr(judged_replies, "calls", 0) + 1  # type: ignore[attr-defined]
        if judged_replies.calls == 1:  # type: ignore[attr-defined]
            return "It does not mention the tilt of the axis.\nVERDICT: INCORRECT\nSCORE: 0.2"
        return "VERDICT: CORRECT\nSCORE: 0.9"
    if "tilt of the axis" in user_text(request):
        return "Earth's axis is tilted, so each hemisphere gets more direct sunlight part of the year.\nAnswer: tilt"
    return "Because Earth is closer to the Sun in summer.\nAnswer: distance"


def test_judged_answer_is_revised_on_the_judges_critique(capsys: pytest.CaptureFixture[str]) -> None:
    result = load("judged_answer").main(ScriptedBackend(judged_replies))
    out = capsys.readouterr().out
    assert "[judge] rejected (score 0.2)" in out and "[judge] accepted (score 0.9)" in out
    assert result.answer == "tilt" and result.stop_reason == "accepted"
    assert "'revise': 1" in out  # the revision is in the trace


@pytest.mark.integration
def test_the_readme_first_command_shows_a_check_rejecting_and_the_loop_retrying() -> None:
    import re
    import subprocess
    import sys

    readme = (EXAMPLES.parent / "README.md").read_text()
    command = re.search(r"\.venv/bin/thinkloop ask (\"[^\"]+\") --check (\S+)", readme)
    assert command is not None, "the README's first command has moved"
    question, check = command.group(1).strip('"'), command.group(2)
    done = subprocess.run(
        [sys.executable, "-m", "thinkloop", "ask", question, "--check", check],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("check 1: rejected: You wrote ")  # the first attempt misses the count
    if "stop: accepted" in lines[-1]:
        assert done.returncode == 0, done.stderr[-2000:]
        assert "check: passed" in lines[-1] and "warning" not in lines[-1]  # the accepted reply is the answer
    else:  # another CPU's path may use up the 6 attempts: then it says so, and exits 3, never 0
        assert done.returncode == 3 and "check: failed" in lines[-1], done.stderr[-2000:]
    assert re.search(r"^\d+ calls · \d+ tokens", lines[-1])
    checks = [line for line in lines if line.startswith("check ")]
    assert len(checks) > 1  # and the loop tried again with the counter's feedback
