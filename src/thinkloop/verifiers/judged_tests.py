"""Test asserts judged like a contest judge: the program computes, the caller compares.

``assert add(2, 3) == 5`` is split in two. The part that calls the program (``add(2, 3)``, a *probe*) runs in
the sandbox, and its value comes back as plain data (:mod:`.plain_data`). The rest (``== 5``) is evaluated
here, in the caller, by a small interpreter of comparisons, ``and``/``or``/``not``, arithmetic and a few pure
built-ins (:data:`_CALLS`). The expected value never enters the sandbox, and nothing the program says about
itself (what it prints, how it exits, objects that claim to equal anything) decides the verdict: a test passes
only when the value the program computed, as data, passes the comparison here.

What a probe contains is the program's input, visible to it, as a contest problem's input is. Tests that do not
fit this form (helper functions, fixtures, asserts inside functions, anything the interpreter here does not
know) still run, inside the sandbox, but then their verdict can be forged by the program and
:attr:`TestPlan.judged` is false: the verdict says so.
"""

from __future__ import annotations

import ast
import builtins
import math
import numbers
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.plain_data import ENCODER_SOURCE, NotPlainData, decode, loads, show

__all__ = ["Outcome", "TestPlan", "TestResult", "new_nonce", "plan_tests"]


def _round(number: Any, digits: Any = None) -> Any:
    if digits is not None and (type(digits) is not int or abs(digits) > 400):
        raise ValueError("round() digits out of range")
    return round(number) if digits is None else round(number, digits)


_CALLS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "len": len,
    "round": _round,
    "isinstance": isinstance,
    "math.isclose": math.isclose,
    "math.fabs": math.fabs,
    "math.isnan": math.isnan,
    "math.isinf": math.isinf,
}
"""Pure, cheap functions the caller may apply to what the program computed."""
_KEYWORDS = {"math.isclose": {"rel_tol", "abs_tol"}}
_CONSTANTS: dict[str, Any] = {
    "None": None,
    "True": True,
    "False": False,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "bytes": bytes,
    "math.pi": math.pi,
    "math.e": math.e,
    "math.inf": math.inf,
    "math.tau": math.tau,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_SYMBOLS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}
_SEQUENCE_ADD = (str, bytes, list, tuple)


class _Unsupported(Exception):
    """An expression the caller's interpreter does not evaluate."""


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


class _Host:
    """Evaluates the caller's side of an assert: probes are names bound to what the program computed."""

    def __init__(self, known: dict[str, Any], aliases: dict[str, str]) -> None:
        self.known = known  # literal assignments of the tests, and probe values
        self.aliases = aliases  # names the tests import -> "module.name" (from math import isclose)

    def resolve(self, node: ast.expr) -> str | None:
        name = _dotted(node)
        if name is None:
            return None
        return self.aliases.get(name, name)

    def supports(self, node: ast.expr) -> bool:
        """Whether this node itself (not its children) is evaluated here."""
        match node:
            case ast.Constant() | ast.List() | ast.Tuple() | ast.Set() | ast.Dict() | ast.BoolOp() | ast.Compare():
                return True
            case ast.UnaryOp(op=ast.Not() | ast.USub() | ast.UAdd()):
                return True
            case ast.BinOp(op=op):
                return type(op) in _ARITHMETIC
            case ast.Name() | ast.Attribute():
                name = self.resolve(node)
                return name is not None and (name in self.known or name in _CONSTANTS)
            case ast.Call(func=func, args=args, keywords=keywords):
                name = self.resolve(func)
                allowed = _KEYWORDS.get(name or "", set())
                return (
                    name in _CALLS
                    and not any(isinstance(a, ast.Starred) for a in args)
                    and all(k.arg in allowed for k in keywords)
                )
            case ast.Subscript(slice=ast.Slice() as part):
                return all(p is None or isinstance(p, ast.Constant) for p in (part.lower, part.upper, part.step))
            case ast.Subscript(slice=ast.Constant()):
                return True
        return False

    def evaluate(self, node: ast.expr) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.List(elts=items):
                return [self.evaluate(item) for item in items]
            case ast.Tuple(elts=items):
                return tuple(self.evaluate(item) for item in items)
            case ast.Set(elts=items):
                return {self.evaluate(item) for item in items}
            case ast.Dict(keys=keys, values=values):
                if any(key is None for key in keys):
                    raise _Unsupported("**")
                return {self.evaluate(k): self.evaluate(v) for k, v in zip(keys, values, strict=True) if k is not None}
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self.evaluate(operand)
            case ast.UnaryOp(op=op, operand=operand):
                value = self.evaluate(operand)
                _check_number(value)
                return -value if isinstance(op, ast.USub) else +value
            case ast.BinOp(left=left, op=op, right=right):
                a, b = self.evaluate(left), self.evaluate(right)
                if not (isinstance(op, ast.Add) and type(a) is type(b) and isinstance(a, _SEQUENCE_ADD)):
                    _check_number(a)
                    _check_number(b)
                return _ARITHMETIC[type(op)](a, b)
            case ast.BoolOp(op=op, values=values):
                result: Any = None
                for item in values:
                    result = self.evaluate(item)
                    if bool(result) is isinstance(op, ast.Or):
                        return result
                return result
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                a = self.evaluate(left)
                for compare, right in zip(ops, comparators, strict=True):
                    b = self.evaluate(right)
                    if not _COMPARE[type(compare)](a, b):
                        return False
                    a = b
                return True
            case ast.Name() | ast.Attribute():
                name = self.resolve(node)
                if name in self.known:
                    return self.known[name]
                if name in _CONSTANTS:
                    return _CONSTANTS[name]
            case ast.Call(func=func, args=args, keywords=keywords):
                function = _CALLS[self.resolve(func) or ""]
                return function(
                    *[self.evaluate(a) for a in args], **{str(k.arg): self.evaluate(k.value) for k in keywords}
                )
            case ast.Subscript(value=value, slice=ast.Slice() as part):
                bounds = [None if p is None else self.evaluate(p) for p in (part.lower, part.upper, part.step)]
                return self.evaluate(value)[slice(*bounds)]
            case ast.Subscript(value=value, slice=index):
                return self.evaluate(value)[self.evaluate(index)]
        raise _Unsupported(type(node).__name__)


def _check_number(value: Any) -> None:
    too_big = isinstance(value, numbers.Integral) and abs(int(value)).bit_length() > 20_000
    if not isinstance(value, numbers.Real) or too_big:
        raise TypeError(f"arithmetic on {type(value).__name__} is not evaluated by the judge")


@dataclass
class _Assert:
    index: int
    label: str
    check: ast.expr  # the assert's test, probes replaced by names _tl_p<N>
    judged: bool
    message: ast.expr | None


@dataclass(frozen=True)
class TestResult:
    label: str
    passed: bool
    detail: str
    judged: bool


@dataclass(frozen=True)
class Outcome:
    """What the caller concluded from one run's reported values."""

    results: tuple[TestResult, ...] = ()
    problem: str | None = None
    """Why no test could be judged (nothing reported, reported twice, not data, setup failed)."""

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)


@dataclass
class TestPlan:
    """The tests, split into what runs in the sandbox (:meth:`harness`) and what the caller judges
    (:meth:`judge`)."""

    asserts: list[_Assert]
    probes: list[str]
    setup: list[tuple[int, str]]  # (position among probes, source) run in the sandbox in order
    known: dict[str, Any]
    aliases: dict[str, str]
    trusted_because: list[str] = field(default_factory=list)
    imported: set[str] = field(default_factory=set)

    @property
    def judged(self) -> bool:
        """Whether every test is judged in the caller (none can be forged by the program)."""
        return not self.trusted_because and all(a.judged for a in self.asserts)

    @property
    def trusted(self) -> int:
        return sum(not a.judged for a in self.asserts) if not self.trusted_because else len(self.asserts)

    def harness(self, nonce: str) -> str:
        """Python source appended to the program: the tests' setup, then each probe, its value reported as data
        on one line of stdout that starts with ``nonce``."""
        lines = [
            "",
            "",
            "# --- tests (their values are judged by the caller) ---",
            ENCODER_SOURCE,
            "def _tl_probe(index, compute):",
            "    try:",
            "        value = compute()",
            "    except BaseException as exc:",
            "        try:",
            "            said = f'{type(exc).__name__}: {exc}'[:300]",
            "        except BaseException:",
            "            said = 'an exception that cannot be shown'",
            "        _tl_report.append([index, 'raised', said])",
            "        return",
            "    try:",
            "        _tl_report.append([index, 'value', _tl_json.dumps(_tl_plain(value))])",
            "    except BaseException as exc:",
            "        _tl_report.append([index, 'unplain', str(exc)[:300]])",
            "import json as _tl_json, os as _tl_os",
            "_tl_report = []",
        ]
        position = 0
        for at, source in [*self.setup, (len(self.probes), "")]:
            while position < at:
                lines.append(f"_tl_probe({position}, lambda: ({self.probes[position]}))")
                position += 1
            if source:
                lines += [
                    "try:",
                    *("    " + line for line in source.splitlines()),
                    "except BaseException as _tl_exc:",
                    "    _tl_report.append([-1, 'setup', f'{type(_tl_exc).__name__}: {_tl_exc}'[:300]])",
                ]
        lines.append(f"_tl_os.write(1, ('\\n{nonce}' + _tl_json.dumps(_tl_report) + '\\n').encode())")
        return "\n".join(lines) + "\n"

    def judge(self, stdout: str, nonce: str) -> Outcome:
        """Judge each assert on the values the run reported. Never raises: anything malformed is a problem."""
        reports = [line.removeprefix(nonce) for line in stdout.splitlines() if line.startswith(nonce)]
        if not reports:
            return Outcome(problem="ended before reporting the tests' values")
        if len(reports) > 1:
            return Outcome(problem="reported the tests' values more than once")
        values, problem = self._values(reports[0])
        if problem is not None:
            return Outcome(problem=problem)
        host = _Host(dict(self.known), self.aliases)
        results = []
        for test in self.asserts:
            results.append(self._judge_one(test, host, values))
        return Outcome(results=tuple(results))

    def _values(self, report: str) -> tuple[dict[int, tuple[str, Any]], str | None]:
        try:
            entries = loads(report)
            if type(entries) is not list:
                raise NotPlainData("not a list")
            values: dict[int, tuple[str, Any]] = {}
            for entry in entries:
                if type(entry) is not list or len(entry) != 3 or type(entry[0]) is not int or type(entry[1]) is not str:
                    raise NotPlainData("an entry is not [index, kind, value]")
                index, kind, payload = entry
                if kind == "setup":
                    said = str(payload)[:300].encode("utf-8", "backslashreplace").decode("utf-8")
                    return {}, f"failed in the tests' setup ({said})"
                if not 0 <= index < len(self.probes) or index in values or type(payload) is not str:
                    raise NotPlainData("an entry is out of place")
                if kind == "value":
                    values[index] = ("value", decode(loads(payload)))
                elif kind in ("raised", "unplain"):  # text for feedback: no lone surrogates to break a trace file
                    values[index] = (kind, payload[:300].encode("utf-8", "backslashreplace").decode("utf-8"))
                else:
                    raise NotPlainData(f"unknown kind {kind[:40]!r}")
        except NotPlainData as exc:
            return {}, f"reported the tests' values in a form that is not plain data ({exc})"
        if len(values) != len(self.probes):
            return {}, f"reported {len(values)} of the tests' {len(self.probes)} values"
        return values, None

    def _judge_one(self, test: _Assert, host: _Host, values: dict[int, tuple[str, Any]]) -> TestResult:
        def result(passed: bool, detail: str) -> TestResult:
            return TestResult(test.label, passed, detail, test.judged)

        for name in _probe_names(test.check):
            kind, value = values[int(name.removeprefix("_tl_p"))]
            if kind == "raised":
                return result(False, f"raised {value}")
            if kind == "unplain":
                return result(False, f"returned {value}")
            host.known[name] = value
        try:
            passed = host.evaluate(test.check)
            if type(passed) is not bool:
                passed = bool(passed)  # a genuine built-in value: its truth is its own
            if passed:
                return result(True, "")
            return result(False, self._detail(test, host))
        except _Unsupported as exc:  # cannot happen for a plan built by plan_tests
            return result(False, f"the judge cannot evaluate it ({exc})")
        except Exception as exc:
            return result(False, f"raised {type(exc).__name__}: {str(exc)[:200]}")

    def _detail(self, test: _Assert, host: _Host) -> str:
        check = test.check
        if test.message is not None:
            try:
                return str(host.evaluate(test.message))[:300]
            except Exception:
                pass
        if isinstance(check, ast.Compare) and len(check.ops) == 1:
            left, right = host.evaluate(check.left), host.evaluate(check.comparators[0])
            if isinstance(check.ops[0], ast.Eq):
                return f"got {show(left)}, expected {show(right)}"
            return f"{show(left)} {_SYMBOLS[type(check.ops[0])]} {show(right)} is false"
        return "it is false"


def _probe_names(node: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id.startswith("_tl_p")]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


_BUILTINS = frozenset(dir(builtins))


def _program_names(node: ast.AST, known: set[str]) -> set[str]:
    """Names an expression reads that only the program (or the tests' setup) defines: not built-ins, not the
    caller's literals, not bound inside the expression itself (comprehension and lambda variables)."""
    local = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    local |= {
        a.arg
        for n in ast.walk(node)
        if isinstance(n, ast.arguments)
        for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, *filter(None, [n.vararg, n.kwarg])]
    }
    return _names(node) - local - known - _BUILTINS


class _Inline(ast.NodeTransformer):
    """Replaces the tests' literal assignments by their values in a probe's source."""

    def __init__(self, literals: dict[str, ast.expr]) -> None:
        self.literals = literals

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id in self.literals:
            return ast.copy_location(self.literals[node.id], node)
        return node


def _label(statement: ast.stmt) -> str:
    source = ast.unparse(statement)
    return source if len(source) <= 120 else source[:117] + "..."


def plan_tests(tests: str) -> TestPlan:
    """Split test source into probes for the sandbox and checks for the caller.

    Raises:
        ConfigurationError: the tests are not Python or have no ``assert``.
    """
    try:
        module = ast.parse(tests)
    except SyntaxError as exc:
        raise ConfigurationError(f"the tests are not valid Python (line {exc.lineno}: {exc.msg})") from exc
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ConfigurationError(f"the tests cannot be parsed ({type(exc).__name__})") from exc
    module.body = _inline_checkers(module.body)
    if not any(isinstance(s, ast.Assert) for s in module.body):
        raise ConfigurationError("the tests have no assert statement to check")
    # Literal assignments stay here (inlined into the probes that use them); names bound more than once, or
    # used by other setup, run in the sandbox as written.
    bound: dict[str, int] = {}
    for statement in module.body:
        if not isinstance(statement, ast.Assert):
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                    bound[node.id] = bound.get(node.id, 0) + 1
    literals: dict[str, ast.expr] = {}
    known: dict[str, Any] = {}
    for statement in module.body:
        match statement:
            case ast.Assign(targets=[ast.Name(id=name)], value=value) if bound.get(name) == 1:
                try:
                    known[name] = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
                literals[name] = value
    for statement in module.body:
        if not isinstance(statement, ast.Assert) and not _is_literal(statement, literals):
            for name in _names(statement) & set(literals):
                del literals[name], known[name]
    aliases: dict[str, str] = {}
    plan = TestPlan(asserts=[], probes=[], setup=[], known=known, aliases=aliases)
    inline = _Inline(literals)
    for statement in module.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            _note_aliases(statement, aliases)
            plan.imported |= {(a.asname or a.name).split(".")[0] for a in statement.names}
    for index, statement in enumerate(module.body):
        if isinstance(statement, ast.Assert):
            plan.asserts.append(_split_assert(statement, index, plan, inline))
        elif not _is_literal(statement, literals):
            plan.setup.append((len(plan.probes), ast.unparse(statement)))
            if not isinstance(statement, ast.Import | ast.ImportFrom):
                plan.trusted_because.append(f"line {statement.lineno} ({type(statement).__name__.lower()})")
        if not isinstance(statement, ast.Assert) and any(isinstance(n, ast.Assert) for n in ast.walk(statement)):
            plan.trusted_because.append(f"an assert inside line {statement.lineno}")
    return plan


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self.new, ctx=node.ctx), node) if node.id == self.old else node


def _inline_checkers(body: list[ast.stmt]) -> list[ast.stmt]:
    """The HumanEval form, ``def check(candidate): assert candidate(1) == 2`` then ``check(f)``, as top-level
    asserts on ``f`` (so they can be judged): only for a function of one argument whose body is asserts alone,
    used only as ``check(name)`` statements."""
    checkers: dict[str, ast.FunctionDef] = {}
    for statement in body:
        match statement:
            case ast.FunctionDef(
                name=name,
                args=ast.arguments(posonlyargs=[], args=[_], vararg=None, kwonlyargs=[], kwarg=None, defaults=[]),
                decorator_list=[],
            ):
                rest = [s for s in statement.body if not _is_docstring(s)]
                if rest and all(isinstance(s, ast.Assert) for s in rest):
                    checkers[name] = statement
    calls: dict[int, tuple[str, str]] = {}
    for index, statement in enumerate(body):
        match statement:
            case ast.Expr(value=ast.Call(func=ast.Name(id=name), args=[ast.Name(id=argument)], keywords=[])) if (
                name in checkers
            ):
                calls[index] = (name, argument)
    used = {name: 0 for name in checkers}
    for index, statement in enumerate(body):
        if index in calls or statement in checkers.values():
            continue
        for name in _names(statement) & set(checkers):
            used[name] += 1  # used some other way too: keep it as it is
    inlined = {name for name, count in used.items() if count == 0}
    result: list[ast.stmt] = []
    for index, statement in enumerate(body):
        if (
            isinstance(statement, ast.FunctionDef)
            and checkers.get(statement.name) is statement
            and statement.name in inlined
        ):
            continue
        if index in calls and calls[index][0] in inlined:
            name, argument = calls[index]
            function = checkers[name]
            parameter = function.args.args[0].arg
            for line in function.body:
                if isinstance(line, ast.Assert):
                    result.append(ast.fix_missing_locations(_Rename(parameter, argument).visit(_copy_statement(line))))
            continue
        result.append(statement)
    return result


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def _copy_statement(statement: ast.stmt) -> ast.stmt:
    return ast.parse(ast.unparse(statement)).body[0]


def _is_literal(statement: ast.stmt, literals: dict[str, ast.expr]) -> bool:
    match statement:
        case ast.Assign(targets=[ast.Name(id=name)]):
            return name in literals
    return False


def _note_aliases(statement: ast.Import | ast.ImportFrom, aliases: dict[str, str]) -> None:
    if isinstance(statement, ast.ImportFrom):
        if statement.module == "math" and statement.level == 0:
            for alias in statement.names:
                aliases[alias.asname or alias.name] = f"math.{alias.name}"
        return
    for alias in statement.names:
        if alias.name == "math" and alias.asname:
            for name in (*_CALLS, *_CONSTANTS):
                if name.startswith("math."):
                    aliases[f"{alias.asname}.{name[5:]}"] = name


def _split_assert(statement: ast.Assert, index: int, plan: TestPlan, inline: _Inline) -> _Assert:
    host = _Host(plan.known, plan.aliases)
    judged = True

    def probe(node: ast.expr) -> ast.expr:
        nonlocal judged
        source = ast.unparse(inline.visit(_copy(node)))
        if not _program_names(node, set(plan.known) | plan.imported):
            judged = False  # a value the program would compute for the caller's side: it could forge it
        plan.probes.append(source)
        return ast.Name(id=f"_tl_p{len(plan.probes) - 1}", ctx=ast.Load())

    def split(node: ast.expr) -> ast.expr:
        if not host.supports(node):
            return probe(node)
        if isinstance(node, ast.Call):  # the callee is the judge's own function: only the arguments split
            return ast.Call(
                func=node.func,
                args=[split(a) for a in node.args],
                keywords=[ast.keyword(arg=k.arg, value=split(k.value)) for k in node.keywords],
            )
        if isinstance(node, ast.Name | ast.Attribute):
            return node
        return _map_children(node, split)

    check = split(statement.test)
    message = statement.msg
    if message is not None and not _names(message) <= set(plan.known):
        message = None  # a message that needs the program's values is not shown
    return _Assert(index=index, label=_label(statement), check=check, judged=judged, message=message)


def _copy(node: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(node), mode="eval").body


def _map_children(node: ast.expr, split: Callable[[ast.expr], ast.expr]) -> ast.expr:
    fields: dict[str, Any] = {}
    for name, value in ast.iter_fields(node):
        if isinstance(value, ast.expr) and name != "ctx":
            fields[name] = split(value)
        elif isinstance(value, list):
            fields[name] = [split(v) if isinstance(v, ast.expr) else v for v in value]
        else:
            fields[name] = value
    return type(node)(**fields)


def new_nonce() -> str:
    """A marker for the line that carries the values (random, so the program's own output is not mistaken
    for it by chance; a program that forges it gains nothing but a rejection)."""
    return f"[thinkloop-values-{secrets.token_hex(8)}]"
