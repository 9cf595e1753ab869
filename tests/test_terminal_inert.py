"""Output is data, never control: what models, programs and traces say reaches the terminal inert.

A model's reply (or a model's name from a server), a program's output in a check's feedback, a benchmark's
model name: each can hold escape sequences that retitle the terminal, clear it, rewrite what was printed or
write the clipboard. The ``check N:`` lines, ``thinkloop ask``'s output and the bench table show them as
``\\x1b``-style escapes instead.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.bench.report import rich_table, summarize
from thinkloop.bench.store import Record
from thinkloop.cli import main
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.terminal import inert
from thinkloop.strategies.cot import ChainOfThought
from thinkloop.testing.mock_server import MockConfig, MockServerProcess
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.spec import verdict_lines

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\x08\x9b1m\u202egnp.exe\x1b]52;c;ZXZpbA==\x07"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@given(st.text())
def test_nothing_that_controls_a_terminal_survives(text: str) -> None:
    shown = inert(text)
    assert not CONTROL.search(shown)
    assert not CONTROL.search(inert(text, one_line=True)) and "\n" not in inert(text, one_line=True)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp"))))
def test_printable_text_is_unchanged(text: str) -> None:
    assert inert(text) == text


def test_escapes_are_shown_not_dropped() -> None:
    assert inert("a\x1b[2Jb\tc\nd") == "a\\x1b[2Jb\tc\nd"
    assert inert("x\u202ey\x9bz", one_line=True) == "x\\u202ey\\x9bz"


class Hostile:
    async def verify(self, question: str, candidate: Candidate, ctx: object = None) -> Verdict:
        return Verdict.reject(f"the program printed {HOSTILE}")


def test_check_lines_show_a_programs_escape_sequences_inert() -> None:
    result = ChainOfThought().run_sync("q", backend=ScriptedBackend(lambda request: "Answer: 1"), verifier=Hostile())
    (line,) = verdict_lines(result.graph)[:1]
    assert line.startswith("check 1: rejected: the program printed \\x1b]0;pwned\\x07")
    assert not CONTROL.search(line)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockConfig(p_right=1.0, model=HOSTILE)) as server:
        yield server


def test_ask_output_shows_a_servers_escape_sequences_inert(
    hostile_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "What is 12 + 30?", "--base-url", hostile_server.base_url, "--model", HOSTILE])
    out = capsys.readouterr().out
    assert code == 0 and "Answer: 42" in out
    assert "\\x1b]0;pwned\\x07" in out
    assert not CONTROL.search(out), out


def test_bench_tables_show_escape_sequences_inert() -> None:
    records = [
        Record(
            config="cot",
            strategy="cot",
            model=HOSTILE,
            dataset="d",
            id=str(i),
            status="done",
            prediction="1",
            gold="1",
            correct=True,
        )
        for i in range(2)
    ]
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(rich_table(summarize(records), width=200))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\\x1b]0;pwned" in shown and not CONTROL.search(shown), shown
