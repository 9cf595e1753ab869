"""Code that must run: the model's program, then the given tests, in the program sandbox.

Models invent libraries and functions; a program that imports one fails here before it is run ("the module
'fastmath' does not exist"), and a program that runs is held to the tests. Each test statement runs on its
own, so the feedback lists every failing test with what it got ("assert add(2, 3) == 5: got 6"), which is
what a reviser needs to fix the code.

Built on :class:`~thinkloop.verifiers.program.ProgramVerifier`'s public ``run`` (the sandbox's guards are
its business); this module only writes the test harness and reads how the run ended.
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
from thinkloop.verifiers.program import ProgramVerifier, extract_program

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

_REPORT = "[thinkloop-tests]"
_OPERATORS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
              ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def _test_block(statement: ast.stmt, index: int) -> str:
    """Python source that runs one test statement and reports its failure (with the values compared)."""
    source = ast.unparse(statement)
    label = repr(source if len(source) <= 120 else source[:117] + "...")
    if isinstance(statement, ast.Assert):
        test = statement.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPERATORS:
            op = _OPERATORS[type(test.ops[0])]
            left, right = ast.unparse(test.left), ast.unparse(test.comparators[0])
            detail = "f'got {_tl_left!r}, expected {_tl_right!r}'" if op == "==" else \
                f"f'{{_tl_left!r}} {op} {{_tl_right!r}} is false'"
            check = f"_tl_left = ({left})\n    _tl_right = ({right})\n    _tl_ok = (_tl_left {op} _tl_right)\n" \
                    f"    _tl_detail = {detail}"
        else:
            check = f"_tl_ok = bool({ast.unparse(test)})\n    _tl_detail = 'it is false'"
        return (
            f"try:\n    {check}\nexcept Exception as _tl_exc:\n"
            f"    _tl_ok, _tl_detail = False, f'raised {{type(_tl_exc).__name__}}: {{_tl_exc}}'\n"
            f"_tl_results.append(({index}, {label}, _tl_ok, _tl_detail))\n"
        )
    # Setup (imports, helpers): runs as written; if it fails, the whole run says so.
    return source + "\n"


def build_harness(tests: str) -> str:
    """The code appended to the program: each test statement run and reported on its own."""
    try:
        module = ast.parse(tests)
    except SyntaxError as exc:
        raise ConfigurationError(f"the tests are not valid Python (line {exc.lineno}: {exc.msg})") from exc
    asserts = [s for s in module.body if isinstance(s, ast.Assert)]
    if not asserts:
        raise ConfigurationError("the tests have no assert statement to check")
    blocks = [_test_block(s, i) for i, s in enumerate(module.body)]
    return (
        "\n\n# --- tests ---\n_tl_results = []\n" + "".join(blocks)
        + "_tl_failed = [r for r in _tl_results if not r[2]]\n"
        + "for _tl_r in _tl_failed:\n"
        + f"    print({_REPORT!r}, 'FAILED', _tl_r[1] + ':', _tl_r[3])\n"
        + f"print({_REPORT!r}, len(_tl_results) - len(_tl_failed), 'of', len(_tl_results), 'tests passed')\n"
        + "raise SystemExit(1 if _tl_failed else 0)\n"
    )


_OPENING_FENCE = re.compile(r"```[ \t]*(?:python3?|py3?)?[ \t]*\n", re.IGNORECASE)
_CODE_START = re.compile(r"^(?:def |class |import |from \S+ import |@)", re.MULTILINE)


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def program_in(text: str) -> str:
    """The program in a reply: its fenced blocks (:func:`extract_program`); else, when that is not Python, the
    code after an opening fence the reply never closed (cut off by the token limit), or the code that starts at
    the first ``def``/``import`` line and runs to the first unindented prose line."""
    source = extract_program(text)
    if _parses(source):
        return source
    openings = list(_OPENING_FENCE.finditer(text))
    if openings:
        tail = text[openings[-1].end():].split("```")[0]
        if _parses(tail):
            return tail
    start = _CODE_START.search(text)
    if start is not None:
        lines: list[str] = []
        for line in text[start.start():].splitlines():
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
    try:
        module = ast.parse(source)
    except SyntaxError:
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
    """Accepts a reply whose program passes every test.

    Args:
        tests: Python source with ``assert`` statements (and any setup they need), run after the program.
        sandbox: the :class:`ProgramVerifier` to run in (default: its defaults, 10 s).
        allow_unguarded: for the default sandbox: run without a network namespace where there is none.
    """

    def __init__(self, tests: str, *, sandbox: ProgramVerifier | None = None, allow_unguarded: bool = False) -> None:
        self.tests = tests
        self.harness = build_harness(tests)
        self.sandbox = sandbox or ProgramVerifier(allow_unguarded=allow_unguarded)

    @classmethod
    def from_file(cls, path: str | Path, **options: object) -> PythonTests:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the tests: {exc.strerror or exc}") from exc
        return cls(text, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"PythonTests({self.tests.count('assert')} asserts, sandbox={self.sandbox!r})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        source = program_in(candidate.text)
        if not source.strip():
            return Verdict.reject("There is no program. Write the function in a ```python block.")
        try:
            ast.parse(source)
        except SyntaxError as exc:
            return Verdict.reject(f"The program is not valid Python (line {exc.lineno}: {exc.msg}).", score=0.0)
        missing = unresolved_imports(source)
        if missing:
            names = ", ".join(repr(m) for m in missing)
            return Verdict.reject(
                f"The program imports {names}, which does not exist here. Use only the Python standard library.",
                score=0.05,
            )
        run = await self.sandbox.run(source + self.harness)
        note = "" if run.guarded else "\n(ran WITHOUT network isolation)"
        lines = [line.removeprefix(_REPORT).strip() for line in run.stdout.splitlines() if line.startswith(_REPORT)]
        summary = next((line for line in reversed(lines) if line.endswith("tests passed")), None)
        if run.ok and summary is not None:
            return Verdict.accept(summary + note)
        failures = [line for line in lines if line.startswith("FAILED")]
        if summary is not None and failures:
            passed, _, total = summary.split()[:3]
            score = 0.1 + 0.8 * int(passed) / max(int(total), 1)
            shown = "\n".join(failures[:5]) + ("\n..." if len(failures) > 5 else "")
            return Verdict.reject(f"{summary}.\n{shown}\nFix the code.{note}", score=score)
        why = run.failure(timeout=self.sandbox.timeout) or "did not finish the tests"
        tail = run.stderr.strip()[-800:]
        return Verdict.reject(f"The program {why}." + (f"\n{tail}" if tail else "") + note, score=0.05)
