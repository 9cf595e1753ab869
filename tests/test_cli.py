"""The ``thinkloop`` command: answers, accounts, JSON, and one clear stderr line for every user error."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from thinkloop.cli import main
from thinkloop.runtime.trace import load_trace
from thinkloop.testing.mock_server import MockConfig, MockServerProcess

UNREACHABLE = "http://127.0.0.1:9/v1"


def thinkloop(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "thinkloop", *args], capture_output=True, text=True, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServerProcess]:
    """An OpenAI-compatible server that always answers sums right."""
    with MockServerProcess(MockConfig(p_right=1.0, model="mock")) as server:
        yield server


# --- errors: one line, non-zero, never a traceback ------------------------------------------------------
def test_an_unreachable_base_url_is_one_line_naming_the_url() -> None:
    result = thinkloop("ask", "What is 12 + 30?", "--base-url", UNREACHABLE, "--model", "m")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("thinkloop: error: cannot reach http://127.0.0.1:9/v1")
    assert result.stdout == ""


def test_a_bad_flag_is_one_line_naming_the_flag() -> None:
    result = thinkloop("ask", "q", "--bogus")
    assert result.returncode == 2
    assert one_line(result.stderr) == "thinkloop: error: unrecognized arguments: --bogus"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["ask", "q", "--budget-tokens", "many"],
            "thinkloop ask: error: argument --budget-tokens: expected a positive integer, got 'many'",
        ),
        (
            ["ask", "q", "--max-tokens", "0"],
            "thinkloop ask: error: argument --max-tokens: expected a positive integer, got 0",
        ),
        (["ask"], "thinkloop ask: error: the following arguments are required: question"),
        (
            ["ask", "q", "--base-url", UNREACHABLE],
            f"thinkloop ask: error: --base-url needs --model NAME (the model's name at {UNREACHABLE})",
        ),
        (["frobnicate"], "thinkloop: error: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert one_line(captured.err).startswith(expected)
    assert captured.out == ""


def test_an_unknown_strategy_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--strategy", "magic:n=3"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thinkloop: error: unknown strategy 'magic'; known strategies: ")


def test_a_bad_strategy_option_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--strategy", "cot:wings=2"]) == 1
    assert "unknown option 'wings'" in one_line(capsys.readouterr().err)


def test_a_missing_model_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.gguf"
    assert main(["ask", "q", "--model", str(missing)]) == 1
    assert one_line(capsys.readouterr().err) == f"thinkloop: error: model file not found: {missing}"


def test_a_missing_key_for_the_openai_api_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert main(["ask", "q", "--model", "gpt-4o-mini"]) == 1
    assert "OPENAI_API_KEY" in one_line(capsys.readouterr().err)


def test_help_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "ask" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage: thinkloop" in capsys.readouterr().err


# --- answers from an OpenAI-compatible server ----------------------------------------------------------
def test_ask_prints_the_answer_and_a_one_line_account(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "What is 12 + 30?", "--base-url", mock_server.base_url, "--model", "mock"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert "The answer is 42." in captured.out
    assert "Answer: 42" in lines
    account = lines[-1]
    assert account.startswith("1 call · ")
    assert "tokens (" in account and " s · stop: completed · cot · mock" in account
    assert "warning" not in account
    assert captured.err == ""


def test_ask_json_prints_the_whole_result_and_writes_the_trace(
    mock_server: MockServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "run.jsonl"
    code = main(
        [
            "ask",
            "What is 2 + 3?",
            "--base-url",
            mock_server.base_url,
            "--model",
            "mock",
            "--strategy",
            "sc:n=3",
            "--max-tokens",
            "64",
            "--budget-tokens",
            "5000",
            "--json",
            "--trace",
            str(trace),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["answer"] == "5"
    assert result["strategy"] == "sc:n=3"  # the spec as typed
    assert result["warnings"] == [] and result["trace_appended"] is False
    assert result["usage"]["calls"] >= 1
    assert result["usage"]["prompt_tokens"] > 0
    assert result["trace_path"] == str(trace)
    assert {node["id"] for node in result["graph"]["nodes"]}
    events = load_trace(trace)
    assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
    requests = [e.node.request for e in events if e.kind == "node" and e.node.request is not None]
    assert requests and all(r.max_tokens is not None and r.max_tokens <= 64 for r in requests)


def test_a_budget_too_small_for_any_call_is_one_line_that_says_what_one_call_reserves(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["ask", "What is 2 + 3?", "--base-url", mock_server.base_url, "--model", "mock", "--budget-tokens", "60"]
    )
    assert code == 5  # budget exhausted
    err = one_line(capsys.readouterr().err)
    assert err.startswith("thinkloop: budget exhausted: the budget (tokens 0 of 60) cannot fit one call")
    assert "plus 512 completion tokens" in err


# --- the embedded model -------------------------------------------------------------------------------
@pytest.mark.integration
def test_ask_answers_with_the_embedded_model() -> None:
    result = thinkloop("ask", "What is 12 + 30?", "--max-tokens", "48", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2 and lines[0].strip()
    assert lines[-1].startswith("1 call · ")
    assert "SmolLM2-135M-Instruct" in lines[-1]
    assert result.stderr == ""


# --- honest accounts: cut-off replies, votes over fragments, ties, no answer -------------------------------
@pytest.fixture(scope="module")
def split_server() -> Iterator[MockServerProcess]:
    """Right half the time, else one of two wrong answers: votes split and tie."""
    with MockServerProcess(MockConfig(p_right=0.5, distractors=2, model="mock")) as server:
        yield server


def ask_mock(server: MockServerProcess, question: str, *args: str) -> list[str]:
    return ["ask", question, "--base-url", server.base_url, "--model", "mock", *args]


def test_a_reply_cut_off_by_its_token_limit_is_a_warning_and_no_answer_exits_4(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(ask_mock(mock_server, "What is 5 + 30?", "--strategy", "direct", "--max-tokens", "16"))
    captured = capsys.readouterr()
    assert code == 4  # no answer: a cut-off reply is not a reply of its own
    account = captured.out.strip().splitlines()[-1]
    assert account.endswith("stop: completed · direct · mock · warning: the reply was cut off at max_tokens=16")
    assert "Answer:" not in captured.out
    assert one_line(captured.err) == (
        "thinkloop: no answer: no answer found in the reply; the reply was cut off at max_tokens=16"
    )


def test_a_vote_over_cut_off_samples_says_so(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(ask_mock(mock_server, "What is 6 + 30?", "--strategy", "sc:n=4", "--max-tokens", "20", "--json"))
    captured = capsys.readouterr()
    assert code == 4
    result = json.loads(captured.out)
    assert result["warnings"] == ["4 of 4 samples cut off by their token limit"] and result["exit_status"] == 4
    assert one_line(captured.err) == (
        "thinkloop: no answer: none of 4 samples gave an answer; 4 of 4 samples cut off by their token limit"
    )


def tied_question() -> str:
    """A question whose first two answers on the split server differ: ``sc:n=2`` ties on it."""
    from thinkloop.testing.mock_server import MockModel, question_key, right_answer

    server = MockModel(MockConfig(p_right=0.5, distractors=2))
    for i in range(100):
        question = f"What is {i} + 70?"
        key, right = question_key(question), right_answer(question)
        if server.answer(key, right, 0) != server.answer(key, right, 1):
            return question
    raise AssertionError("no tied question in 100")


def test_a_tied_vote_is_a_warning_and_the_split_is_shown(
    split_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(ask_mock(split_server, tied_question(), "--strategy", "sc:n=2"))
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    votes = next(line for line in out if line.startswith("Votes: "))
    first, second = votes.removeprefix("Votes: ").split(", ")
    assert first.endswith(" ×1") and second.endswith(" ×1")
    winner = first.removesuffix(" ×1")
    assert f"Answer: {winner}" in out
    loser = second.removesuffix(" ×1")
    assert f"warning: tied vote: {winner}, {loser} with 1 each; {winner} won the tie-break" in out[-1]


def test_the_plain_output_shows_the_vote_split(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(ask_mock(mock_server, "What is 8 + 30?", "--strategy", "sc:n=3")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-3:-1] == ["Answer: 38", "Votes: 38 ×3"]
    assert " · sc:n=3 · mock" in lines[-1]


# --- the flags people expect -------------------------------------------------------------------------------
def test_the_question_comes_from_stdin_and_the_flags_reach_the_request(
    mock_server: MockServerProcess, tmp_path: Path
) -> None:
    trace = tmp_path / "t.jsonl"
    args = [
        "ask",
        "-",
        "--base-url",
        mock_server.base_url,
        "--model",
        "mock",
        "--system",
        "Be brief, be exact.",
        "--temperature",
        "0.3",
        "--budget-calls",
        "2",
        "--budget-seconds",
        "30",
        "--trace",
        str(trace),
    ]
    first = subprocess.run(
        [sys.executable, "-m", "thinkloop", *args],
        input="What is 9 + 30?\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert "Answer: 39" in first.stdout and "(appended)" not in first.stdout
    events = load_trace(trace)
    assert events[0].question == "What is 9 + 30?"
    assert events[0].budget == {"calls": 2, "seconds": 30.0}
    request = next(e.node.request for e in events if e.kind == "node" and e.node.request is not None)
    assert request.messages[0].content == "Be brief, be exact." and request.temperature == 0.3
    again = subprocess.run(
        [sys.executable, "-m", "thinkloop", *args], input="What is 9 + 30?", capture_output=True, text=True, timeout=120
    )
    assert again.stdout.strip().splitlines()[-1].endswith(f"trace: {trace} (appended)")


def test_an_api_key_variable_names_the_key_for_a_server(
    mock_server: MockServerProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(ask_mock(mock_server, "What is 1 + 1?", "--api-key-env", "THINKLOOP_TEST_KEY")) == 2
    assert one_line(capsys.readouterr().err) == (
        "thinkloop ask: error: --api-key-env THINKLOOP_TEST_KEY: the variable THINKLOOP_TEST_KEY is not set"
    )
    monkeypatch.setenv("THINKLOOP_TEST_KEY", "sk-test-not-a-secret")
    assert main(ask_mock(mock_server, "What is 1 + 1?", "--api-key-env", "THINKLOOP_TEST_KEY")) == 0


def test_a_dollar_budget_needs_a_price(mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ask_mock(mock_server, "q", "--budget-dollars", "0.5")) == 2
    assert "--budget-dollars needs a price for 'mock'" in one_line(capsys.readouterr().err)


def test_a_quoted_value_with_a_comma_reaches_the_model(mock_server: MockServerProcess, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    code = main(
        ask_mock(
            mock_server, "What is 3 + 30?", "--strategy", 'cot:system_prompt="Be brief, exact."', "--trace", str(trace)
        )
    )
    assert code == 0
    request = next(e.node.request for e in load_trace(trace) if e.kind == "node" and e.node.request is not None)
    assert request.messages[0].content == "Be brief, exact."


# --- specs the command line cannot serve: one line each (issue 16, item 8) ----------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--strategy", "sc:n=true"], "sc: option 'n' expects an integer, got 'true'"),
        (
            ["--strategy", "tree:max_tokens=128", "--max-tokens", "64"],
            "tree: the spec sets max_tokens=128 but --max-tokens 64 is given too; give it once",
        ),
        (["--strategy", "critique:critic=verifier"], "critic=verifier needs a verifier, which the command line"),
        (["--strategy", "tree:value=verifier"], "value=verifier needs a verifier, which the command line"),
        (["--strategy", "bon:scorer=verifier"], "scorer=verifier needs a verifier, which the command line"),
        (["--strategy", 'sc:inner="critique:critic=verifier"'], "critic=verifier needs a verifier"),
        (
            ["--strategy", "cot:wings=2"],
            "cot: unknown option 'wings'; valid options: history, max_rounds, max_tokens, "
            "reread, system_prompt, temperature",
        ),
        (["--strategy", "tree", "--system", "x"], "tree writes its own prompts; --system does not apply to it"),
        (["--strategy", 'cot:system_prompt="open'], 'a " quote is never closed'),
    ],
)
def test_a_spec_the_command_line_cannot_serve_is_one_line_before_any_call(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "q", "--base-url", UNREACHABLE, "--model", "m", *args]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thinkloop: error: ") and expected in line


def test_an_inner_strategy_from_the_command_line_runs(
    mock_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(ask_mock(mock_server, "What is 4 + 30?", "--strategy", 'sc:n=2,inner="cot:max_rounds=2"', "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert (result["answer"], result["strategy"]) == ("34", 'sc:n=2,inner="cot:max_rounds=2"')
    assert result["data"]["votes"] == {"34": 2}


# --- thinkloop strategies --------------------------------------------------------------------------------
def test_strategies_lists_every_option_with_its_type_default_and_meaning(capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.strategies.registry import STRATEGIES, strategy_class

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in STRATEGIES:
        assert f"\n{name}: " in f"\n{out}"
        for field in strategy_class(name).Config.model_fields:
            if not (name == "tree" and field == "system_prompt"):
                assert f"  {field} " in out
    assert main(["strategies", "tree"]) == 0
    tree = capsys.readouterr().out.splitlines()
    assert tree[0] == "tree: Search over partial solutions with a value function and backtracking."
    assert tree[1].split() == ["max_tokens", "an", "integer", "128", "completion", "limit", "per", "model", "call"]
    assert all(len(line.split("  ")) > 1 and line.rstrip() == line for line in tree[1:])
    assert main(["strategies", "magic"]) == 1
    assert one_line(capsys.readouterr().err).startswith("thinkloop: error: unknown strategy 'magic'")


# --- the docs and --help agree with the code ---------------------------------------------------------------
def _help_default(action: Any) -> str:
    match = re.search(r"default: ([^;)]+)", action.help or "")
    return match.group(1).strip() if match else "—"


def _readme_rows(heading: str, page: str) -> dict[str, tuple[str, str]]:
    """The flag table after ``heading`` in a docs page: flag -> (its cell as written, default)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text()
    table = text[text.index(heading) :].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`").split()[0]] = (cells[0].strip("`"), cells[1])
    return rows


def _parser_rows(*parsers: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    rows = {}
    for parser in parsers:
        for action in parser._actions:
            if action.help in (argparse.SUPPRESS, None) or isinstance(action, argparse._HelpAction):
                continue
            if not action.option_strings:
                if parser.prog.endswith("ask"):
                    rows["QUESTION"] = ("QUESTION", "—")
                continue
            flag = action.option_strings[0]
            written = flag if action.nargs == 0 else f"{flag} {action.metavar}"
            default = _help_default(action)
            if action.default not in (None, False, []):
                assert str(action.default) == default, (flag, action.default, default)
            rows[flag] = (written, default)
    return rows


def test_the_docs_document_every_flag_and_default_as_help_does() -> None:
    from thinkloop.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    bench = next(a for a in commands["bench"]._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert _readme_rows("`thinkloop ask` flags:", "getting-started.md") == _parser_rows(commands["ask"])
    assert _readme_rows("`thinkloop bench run DATA`", "benchmarks.md") == _parser_rows(bench["run"], bench["report"])


# --- specs: parsing, types and names ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "options"),
    [
        ("sc:n=5", {"n": 5}),
        ("sc: n = 5 , adaptive = yes", {"n": 5, "adaptive": True}),
        (
            'cot:system_prompt="Be brief, be exact.",max_rounds=2',
            {"system_prompt": "Be brief, be exact.", "max_rounds": 2},
        ),
        ("cot:system_prompt='Say \"hi\", then stop.'", {"system_prompt": 'Say "hi", then stop.'}),
        ('cot:system_prompt="a \\"quoted\\" word"', {"system_prompt": 'a "quoted" word'}),
        ("tree:temperature=null,mode=beam", {"temperature": None, "mode": "beam"}),
        ("sc:confidence=0.9", {"confidence": 0.9}),
    ],
)
def test_spec_values_are_read_as_their_option_types(spec: str, options: dict[str, Any]) -> None:
    from thinkloop.strategies.registry import build_strategy

    strategy = build_strategy(spec)
    assert {k: getattr(strategy.config, k) for k in options} == options
    assert strategy.label == spec.strip()


def test_a_label_is_a_spec_that_builds_the_same_strategy() -> None:
    from thinkloop import BestOfN, CritiqueRevise, SelfConsistency, TreeSearch
    from thinkloop.strategies.registry import build_strategy

    for strategy in (
        SelfConsistency(n=5),
        SelfConsistency(n=3, inner=CritiqueRevise(max_rounds=1)),
        BestOfN(n=4, scorer="judge"),
        TreeSearch(mode="beam", temperature=None),
    ):
        rebuilt = build_strategy(strategy.label)
        assert type(rebuilt) is type(strategy) and rebuilt.config == strategy.config
        assert (rebuilt.inner is None) == (strategy.inner is None)
    assert SelfConsistency(n=5).label == "sc:n=5"


def test_quoted_and_prose_answers_come_out_clean() -> None:
    from thinkloop.runtime.result import Candidate
    from thinkloop.strategies.vote import majority_vote
    from thinkloop.verifiers.extract import extract_answer

    assert [extract_answer(t) for t in ('Answer: "6"', "The answer is '6'.", "Answer: “6”")] == ["6", "6", "6"]
    prose = "So the answer is that we need to add three and two together to get the final count"
    assert extract_answer(prose) is None
    assert extract_answer("Answer: Paris") == "Paris"
    texts = ['Answer: "6"', "Answer: 6", prose]
    vote = majority_vote([Candidate(text=t, answer=extract_answer(t)) for t in texts])
    assert vote.counts() == {"6": 2} and vote.unanswered == 1
