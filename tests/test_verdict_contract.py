"""The verdict is the contract: a run says whether its check passed, what a reader must know, and why it stopped,
the same way in Python, on the command line (text, JSON and exit status), in the trace the viewer and
OpenTelemetry read, in ``serve``'s reply and in ``bench``'s records.

Scripted replies make each case exact; the embedded model's versions live in ``test_examples.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinkloop import ScriptedBackend
from thinkloop.cli import main
from thinkloop.runtime.trace import load_trace
from thinkloop.strategies.best_of_n import BestOfN
from thinkloop.strategies.cot import ChainOfThought, Direct
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.strategies.tree_search import TreeSearch
from thinkloop.types import ChatRequest
from thinkloop.verifiers.numeric import NumberWithin
from thinkloop.verifiers.words import WordCount


def cycle(*replies: str) -> ScriptedBackend:
    state = {"i": 0}

    def reply(_request: ChatRequest) -> str:
        state["i"] += 1
        return replies[(state["i"] - 1) % len(replies)]

    return ScriptedBackend(reply)


# --- Result: one verdict, one list of warnings, one stop line ----------------------------------------------
def test_a_failed_check_is_a_failed_verdict_with_the_feedback_and_a_warning() -> None:
    backend = cycle("pH is 3.3. Answer: 3.3", "Answer: 4", "Answer: 2.5")
    result = BestOfN(n=8).run_sync("pH of 0.001 M HCl?", backend=backend, verifier=NumberWithin(3, tolerance=0.05))
    assert result.verdict == "failed" and not result.passed
    assert result.feedback is not None and "not within 0.05" in result.feedback
    assert result.warnings[0].startswith("check failed: none of 8 checked attempts passed (")
    assert result.stop_reason == "completed"
    assert result.stop_detail == "scored 8 of 8 candidates with the check; none passed"


def test_a_passed_check_is_passed_and_no_verifier_is_unchecked() -> None:
    passed = BestOfN(n=2).run_sync("q", backend=cycle("Answer: 3"), verifier=NumberWithin(3, tolerance=0.05))
    assert (passed.verdict, passed.warnings) == ("passed", ())
    plain = Direct().run_sync("q", backend=cycle("Answer: 3"))
    assert (plain.verdict, plain.feedback, plain.warnings) == ("unchecked", None, ())
    assert plain.stop_detail == "the strategy ran its course (1 call)"


def test_an_answer_no_strategy_checked_is_checked_once_at_the_end() -> None:
    """Self-consistency votes without reading the verifier; the run still has a verdict on its winner."""
    result = SelfConsistency(n=3).run_sync("q", backend=cycle("Answer: 7"), verifier=NumberWithin(3))
    assert result.verdict == "failed" and result.answer == "7"
    checks = [n for n in result.graph.nodes() if n.kind == "verify"]
    assert len(checks) == 1 and checks[0].strategy == "check"


def test_rounds_that_never_pass_say_so() -> None:
    result = ChainOfThought(max_rounds=3).run_sync(
        "One sentence about rain in exactly 7 words.",
        backend=cycle("You wrote 14 words, try again."),
        verifier=WordCount(7),
    )
    assert result.verdict == "failed" and result.stop_reason == "max_rounds"
    assert result.stop_detail == "the round limit was reached after 3 calls with no accepted answer"
    assert result.warnings[0].startswith("check failed: none of 3 checked attempts passed")


def test_votes_spread_is_not_called_converged() -> None:
    """Five of thirty votes is no majority, whatever the stopping rule on the top two answers says."""
    answers = iter(["42"] * 5 + [str(100 + i) for i in range(25)])
    backend = ScriptedBackend(lambda _request: f"Answer: {next(answers)}")
    result = SelfConsistency(n=30).run_sync("q", backend=backend)
    assert result.answer == "42" and result.stop_reason == "completed"
    assert result.stop_detail == "votes spread: every sample drawn, no majority (42 has 5 of 30 samples)"
    assert "votes spread: 42 has 5 of 30 samples (26 answers)" in result.warnings


def test_an_adaptive_stop_without_a_majority_is_votes_spread() -> None:
    answers = iter(["7", "7", "7", "7", "7"] + [None] * 20)
    backend = ScriptedBackend(lambda _request: f"Answer: {next(answers) or 'unclear'}")
    result = SelfConsistency(n=30, adaptive=True, parallel=10, min_samples=10).run_sync("q", backend=backend)
    assert result.votes == {"7": 5}
    assert result.stop_reason != "converged" and "no majority" in result.stop_detail


def test_every_branch_pruned_says_so_and_an_answer_from_a_pruned_thought_is_flagged() -> None:
    def reply(request: ChatRequest) -> str:
        system = request.messages[0].content
        return "SCORE: 1" if "SCORE" in system else "the total is 12"

    result = TreeSearch(branching=2, max_depth=3).run_sync("q", backend=ScriptedBackend(reply))
    assert result.stop_reason == "completed"
    assert result.stop_detail.startswith(
        "every branch was pruned (1 thought valued below 0.3) before any reached "
        "an answer; answering from the best unfinished thought (value 0.10)"
    )
    assert any(
        w.startswith("the answer comes from a pruned branch (node ") and "value 0.10 < 0.3" in w
        for w in result.warnings
    )


def test_a_budget_that_cannot_fit_one_call_says_what_one_call_reserves() -> None:
    from thinkloop import Budget

    result = ChainOfThought().run_sync("q", backend=cycle("Answer: 1"), budget=Budget(tokens=60))
    assert result.stop_reason == "budget" and result.answer is None
    assert result.stop_detail.startswith(
        "the budget (tokens 0 of 60) cannot fit one call (one call reserves its prompt plus 512 completion tokens"
    )


def test_the_trace_carries_the_verdict_for_the_viewer_and_opentelemetry(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    result = BestOfN(n=2).run_sync("q", backend=cycle("Answer: 4"), verifier=NumberWithin(3), trace_path=trace)
    finished = load_trace(trace)[-1]
    assert finished.kind == "run_finished"
    assert (finished.verdict, finished.warnings, finished.stop_detail) == (
        "failed",
        result.warnings,
        result.stop_detail,
    )

    from thinkloop.view.document import build_document

    run = build_document(load_trace(trace))["runs"][0]
    assert run["verdict"] == "failed" and run["warnings"] == list(result.warnings)
    assert run["feedback"] == result.feedback and run["stop_detail"] == result.stop_detail


# --- the command line: exit codes a script can trust -------------------------------------------------------
@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``ask`` on scripted replies: the test puts them in the list this returns."""
    import thinkloop.cli.ask as ask_cli

    scripted: list[str] = []
    monkeypatch.setattr(ask_cli, "make_backend", lambda *_args, **_kwargs: cycle(*scripted))
    return scripted


def ask(replies: list[str], script: list[str], *args: str) -> int:
    replies[:] = script
    return main(["ask", *args])


def test_exit_0_for_an_open_question_whose_reply_states_no_answer(
    replies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    story = "Whiskers the cat napped in the sun. When she woke, the mouse had 3 friends and was gone."
    code = ask(replies, [story], "Tell me a two-sentence story about a cat.", "--strategy", "direct")
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert story in out and "Answer:" not in out.replace(story, "")
    assert "warning" not in out


def test_exit_4_when_an_answer_was_asked_for_and_none_was_stated(
    replies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = ask(replies, ["I am not sure."], "What is 2 + 3?", "--strategy", "direct", "--require-answer")
    assert code == 4
    assert capsys.readouterr().err == "thinkloop: no answer: no answer found in the reply\n"


def test_exit_3_when_the_check_failed_and_the_answer_is_not_shown_as_a_success(
    replies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = ask(replies, ["Answer: 3.3"], "pH of 0.001 M HCl?", "--check", "number:3+-0.05", "--strategy", "bon:n=8")
    out, err = capsys.readouterr()
    assert code == 3
    lines = out.strip().splitlines()
    assert lines[-3:-1] == ["Answer: 3.3", "Answer (failed the check): 3.3"]  # the reply, then the verdict's line
    assert "check: failed" in lines[-1] and "warning: check failed: none of 8 checked attempts passed" in lines[-1]
    assert err.startswith("thinkloop: check failed: scored 8 of 8 candidates with the check; none passed: ")


def test_a_text_check_never_prints_a_number_from_the_sentence_as_the_answer(
    replies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = ask(
        replies, ["You wrote 14 words, try again."], "One sentence about rain in exactly 7 words.", "--check", "words:7"
    )
    out, err = capsys.readouterr()
    assert code == 3
    assert not [line for line in out.splitlines() if line.startswith("Answer")]
    assert "stop: max_rounds (the round limit was reached after 6 calls with no accepted answer)" in out
    assert err.startswith("thinkloop: check failed: ")


def test_a_passing_text_check_exits_0_and_json_has_the_verdict(
    replies: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = ask(replies, ["Rain taps softly on the old roof."], "Rain in 7 words.", "--check", "words:7", "--json")
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["exit_status"] == 0
    assert (payload["verdict"], payload["warnings"]) == ("passed", [])
    assert payload["stop_detail"].startswith("the check accepted the answer")


def test_exit_5_when_the_budget_runs_out_first(replies: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = ask(replies, ["Answer: 1"], "What is 12 + 30?", "--budget-tokens", "60")
    assert code == 5
    assert capsys.readouterr().err.startswith(
        "thinkloop: budget exhausted: the budget (tokens 0 of 60) cannot fit one call (one call reserves its "
        "prompt plus 512 completion tokens"
    )


def test_a_base_url_without_a_scheme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--base-url", "127.0.0.1:8080/v1", "--model", "m"]) == 2
    assert capsys.readouterr().err == (
        "thinkloop: error: --base-url '127.0.0.1:8080/v1' is not an http:// or https:// URL; did you mean "
        "http://127.0.0.1:8080/v1?\n"
    )


def test_view_of_a_results_file_is_one_line_that_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(
        json.dumps(
            {"config": "c", "strategy": "cot", "model": "m", "dataset": "d", "id": "1", "status": "done", "gold": "1"}
        )
        + "\n"
    )
    assert main(["view", str(results)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "validation error" not in err
    assert err.startswith(f"thinkloop view: error: {results} is a bench results file, not a trace: ")


# --- bench: rows and report -------------------------------------------------------------------------------
def test_bench_records_and_the_report_carry_the_verdict(tmp_path: Path) -> None:
    import anyio

    from thinkloop.bench.datasets import Dataset, Problem
    from thinkloop.bench.report import load_summaries, render_markdown
    from thinkloop.bench.runner import run_benchmark
    from thinkloop.bench.store import read_records

    problems = (
        Problem(id="a", question="pH?", answer="", check={"kind": "number", "value": 3, "tolerance": 0.05}),
        Problem(id="b", question="pH?", answer="", check={"kind": "number", "value": 5}),
    )
    data = Dataset(name="ph", path=Path("<ph>"), problems=problems)
    out = tmp_path / "r.jsonl"
    anyio.run(lambda: run_benchmark([data], ["bon:n=2"], [cycle("Answer: 3")], out))
    records = {r.id: r for r in read_records(out)}
    assert (records["a"].verdict, records["a"].correct) == ("passed", True)
    assert (records["b"].verdict, records["b"].correct) == ("failed", False)
    assert records["b"].warnings and records["b"].warnings[0].startswith("check failed: ")
    (summary,) = load_summaries(out)
    assert (summary.checked, summary.passed) == (2, 1)
    header, _, row = render_markdown([summary]).splitlines()
    assert header.endswith("| check passed |") and row.endswith("| 1 of 2 |")


# --- vote keys: the value an answer states --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("0*(-3), which equals 0 because anything times zero is zero", "0"),
        ("actually 42", "42"),
        ("So, 42", "42"),
        ("42", "42"),
        ("x = 5", "x = 5"),  # an equation is not a worked value: left to the equivalence rules
        ("actually", "actually"),
    ],
)
def test_vote_keys_are_the_value_stated(written: str, key: str) -> None:
    from thinkloop.strategies.vote import vote_form

    assert vote_form(written) == key


def test_actually_42_votes_with_42_and_a_worked_zero_with_0() -> None:
    from thinkloop.runtime.result import Candidate
    from thinkloop.strategies.vote import majority_vote

    answers = ["actually 42", "42", "0*(-3), which equals 0 because x", "0", "41"]
    tally = majority_vote([Candidate(text="", answer=a) for a in answers])
    assert tally.counts() == {"0": 2, "42": 2, "41": 1}


def test_auto_says_which_stages_ran_and_that_none_was_accepted() -> None:
    from thinkloop.strategies.auto import Auto

    result = Auto(bon_n=2, revise_rounds=1).run_sync(
        "One sentence about rain in exactly 7 words.",
        backend=cycle("You wrote 14 words, try again."),
        verifier=WordCount(7),
    )
    assert result.verdict == "failed" and result.stop_reason == "completed"
    assert result.stop_detail.startswith("no stage accepted an answer (one answer, then bon:n=2")
    assert "critique" in result.stop_detail
    assert result.warnings[0].startswith("check failed: ")
