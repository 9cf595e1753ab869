"""Code that must run: the model's program, then the given tests, in the program sandbox.

Models invent libraries and functions; a program that imports one fails here before it is run ("the module
'fastmath' does not exist"), and a program that runs is held to the tests. Each test is judged on its own, so
the feedback lists every failing test with what it got ("assert add(2, 3) == 5: got 6, expected 5"), which is
what a reviser needs to fix the code.

Reasoning models game their checks when they can (print a passing summary, exit early, return objects equal to
anything, read the expected values), so the verdict never comes from the program: the program's values come
back as data and the caller compares them (:mod:`thinkloop.verifiers.judged_tests`). The sandbox's guards are
:class:`~thinkloop.verifiers.program.ProgramVerifier`'s business.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.judged_tests import TestPlan, new_nonce, plan_tests
from thinkloop.verifiers.program import ProgramVerifier, extract_program

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate


def parse_program(source: str) -> ast.Module | str:
    """The program's syntax tree, or why it has none: a syntax error, or nesting too deep for the parser (a
    reply of thousands of nested operators must be a rejection, not a ``RecursionError`` in the caller)."""
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        return f"The program is not valid Python (line {exc.lineno}: {exc.msg})."
    except (RecursionError, MemoryError, ValueError) as exc:
        return f"The program cannot be parsed ({type(exc).__name__}: nested too deeply or not text)."


_OPENING_FENCE = re.compile(r"```[ \t]*(?:python3?|py3?)?[ \t]*\n", re.IGNORECASE)
_CODE_START = re.compile(r"^(?:def |class |import |from \S+ import |@)", re.MULTILINE)


def _parses(source: str) -> bool:
    return not isinstance(parse_program(source), str)


def program_in(text: str) -> str:
    """The program in a reply: its fenced blocks (:func:`extract_program`); else, when that is not Python, the
    code after an opening fence the reply never closed (cut off by the token limit), or the code that starts at
    the first ``def``/``import`` line and runs to the first unindented prose line."""
    source = extract_program(text)
    if _parses(source):
        return source
    openings = list(_OPENING_FENCE.finditer(text))
    if openings:
        tail = text[openings[-1].end() :].split("```")[0]
        if _parses(tail):
            return tail
    start = _CODE_START.search(text)
    if start is not None:
        lines: list[str] = []
        for line in text[start.start() :].splitlines():
            if lines and line.strip() and not line[0].isspace() and not _CODE_START.match(line):
                break  # prose after the code
            lines.append(line)
        while lines:
            candidate = "\n".join(lines)
            if _parses(candidate):
                return candidate
            lines.pop()  # a last line cut off mid-statement
    return source if openings or start is not None or source != text else ""  # prose alone is no program


def unresolved_imports(source: str) -> list[str]:
    """Top-level modules the program imports that cannot be found here (invented libraries).

    Only top-level names are looked up (``importlib.util.find_spec`` of a top-level name runs no code).
    """
    module = parse_program(source)
    if isinstance(module, str):
        return []
    names: list[str] = []
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.extend(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    missing = []
    for name in dict.fromkeys(names):
        if name in sys.stdlib_module_names or name in sys.builtin_module_names:
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


class PythonTests:
    """Accepts a reply whose program passes every test, judged outside the program.

    Each ``assert`` is split (:mod:`thinkloop.verifiers.judged_tests`): the part that calls the program runs in
    the sandbox and its value comes back as plain data; the comparison with the expected value is made here, in
    the caller, and the expected value never enters the sandbox. Nothing the program prints or how it exits
    can pass a test. Tests with setup the caller cannot keep (helper functions, fixtures, asserts inside
    functions) still run, but inside the program, which could forge them: the verdict then says it trusts the
    program (see ``docs/sandbox.md``).

    Args:
        tests: Python source with ``assert`` statements (and any setup they need), run after the program.
        sandbox: the :class:`ProgramVerifier` to run in (default: its defaults, 10 s).
        allow_unguarded: for the default sandbox: run without a network namespace where there is none.
    """

    def __init__(self, tests: str, *, sandbox: ProgramVerifier | None = None, allow_unguarded: bool = False) -> None:
        self.tests = tests
        self.plan: TestPlan = plan_tests(tests)
        self.sandbox = sandbox or ProgramVerifier(allow_unguarded=allow_unguarded)

    @classmethod
    def from_file(
        cls, path: str | Path, *, sandbox: ProgramVerifier | None = None, allow_unguarded: bool = False
    ) -> PythonTests:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the tests: {exc.strerror or exc}") from exc
        return cls(text, sandbox=sandbox, allow_unguarded=allow_unguarded)

    def __repr__(self) -> str:
        return f"PythonTests({len(self.plan.asserts)} asserts, sandbox={self.sandbox!r})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        source = program_in(candidate.text)
        if not source.strip():
            return Verdict.reject("There is no program. Write the function in a ```python block.")
        parsed = parse_program(source)
        if isinstance(parsed, str):
            return Verdict.reject(parsed, score=0.0)
        missing = unresolved_imports(source)
        if missing:
            names = ", ".join(repr(m) for m in missing)
            return Verdict.reject(
                f"The program imports {names}, which does not exist here. Use only the Python standard library.",
                score=0.05,
            )
        nonce = new_nonce()
        run = await self.sandbox.run(source + "\n" + self.plan.harness(nonce))
        notes = [] if run.guarded else ["(ran WITHOUT network isolation)"]
        if not self.plan.judged:
            notes.append(
                f"({self.plan.trusted} of {len(self.plan.asserts)} tests ran inside the program, which "
                f"could forge them: the tests have {', '.join(self.plan.trusted_because) or 'asserts'} "
                "the caller cannot judge)"
            )
        why = run.failure(timeout=self.sandbox.timeout, max_output_bytes=self.sandbox.max_output_bytes)
        outcome = self.plan.judge(run.stdout, nonce)
        if outcome.problem is not None:
            why = why or outcome.problem
            tail = run.stderr.strip()[-800:] if not run.output_exceeded else ""
            return Verdict.reject(
                "\n".join([f"The program {why}." + (f"\n{tail}" if tail else ""), *notes]), score=0.05
            )
        total = len(outcome.results)
        summary = f"{outcome.passed} of {total} tests passed"
        failures = [f"FAILED {r.label}: {r.detail}" for r in outcome.results if not r.passed]
        if not failures and why is None:
            return Verdict.accept("\n".join([summary, *notes]))
        shown = "\n".join(failures[:5]) + ("\n..." if len(failures) > 5 else "")
        if why is not None:  # every test passed, but the run did not end well afterwards
            shown = "\n".join(filter(None, [shown, f"The program {why} after the tests."]))
        score = 0.1 + 0.8 * outcome.passed / max(total, 1)
        return Verdict.reject("\n".join([f"{summary}.", shown, "Fix the code.", *notes]), score=score)
