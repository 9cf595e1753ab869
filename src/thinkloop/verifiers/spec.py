"""Checks as data: one spelling for the command line (``--check words:12``) and for data set items
(``{"kind": "words", "n": 12}``), both turned into a verifier by :func:`verifier_from_check`.

Command-line spellings (``KIND`` or ``KIND:ARGUMENT``):

==========================  ===============================================================
``words:12``                 exactly 12 words (``words:12+-1`` allows one more or fewer)
``regex:PATTERN``            the answer contains a match for PATTERN (``fullregex:`` for all of it)
``number:7.2``               a number within 1e-6 of 7.2; ``number:7.2+-0.05`` sets the tolerance
``tests:FILE.py``            the program in the reply passes FILE.py's asserts in the sandbox
``lowercase``                no capital letters
``no-commas``                no commas
``ends-with:WORD``           the last word is WORD
``keyword:WORD*2``           WORD at least twice (``keyword:WORD`` once)
``game24:4,7,8,8``           an expression making 24 from those numbers, each once
``sum-product:3``            3 positive integers whose sum equals their product
==========================  ===============================================================

Several checks must all pass (``AllOf``); a data item's check may be ``{"kind": "all", "checks": [...]}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.terminal import inert
from thinkloop.verifiers.base import Verifier

if TYPE_CHECKING:
    from thinkloop.runtime.graph import ReasoningGraph

KINDS = (
    "words",
    "regex",
    "fullregex",
    "number",
    "tests",
    "lowercase",
    "no-commas",
    "ends-with",
    "keyword",
    "game24",
    "sum-product",
    "all",
)
_TOLERANCE = re.compile(r"^\s*(?P<value>[^±]+?)\s*(?:(?:\+-|±|\+/-)\s*(?P<tol>\S+))?\s*$")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"check {what}: {text!r} is not a number") from None


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"check {what}: {text!r} is not a whole number") from None


def parse_check(text: str) -> dict[str, Any]:
    """``KIND[:ARGUMENT]`` (see the module docstring) as a check mapping."""
    kind, _, arg = text.strip().partition(":")
    kind = kind.strip().lower().replace("_", "-")
    what = repr(text)
    if kind in ("lowercase", "no-commas"):
        return {"kind": kind}
    if not arg.strip():
        if kind in KINDS:
            raise ConfigurationError(f"check {what}: {kind} needs an argument ({kind}:...)")
        raise ConfigurationError(f"unknown check {kind!r}; known checks: {', '.join(k for k in KINDS if k != 'all')}")
    match kind:
        case "words" | "number":
            found = _TOLERANCE.match(arg)
            if found is None:
                raise ConfigurationError(f"check {what}: expected {kind}:VALUE or {kind}:VALUE+-TOLERANCE")
            if kind == "words":
                check: dict[str, Any] = {"kind": "words", "n": _whole(found["value"], what)}
                if found["tol"]:
                    check["tolerance"] = _whole(found["tol"], what)
                return check
            check = {"kind": "number", "value": _number(found["value"], what)}
            if found["tol"]:
                check["tolerance"] = _number(found["tol"], what)
            return check
        case "regex" | "fullregex":
            return {"kind": kind, "pattern": arg}
        case "tests":
            return {"kind": "tests", "file": arg.strip()}
        case "ends-with":
            return {"kind": "ends-with", "word": arg.strip()}
        case "keyword":
            word, _, times = arg.partition("*")
            return {"kind": "keyword", "word": word.strip(), "times": _whole(times, what) if times else 1}
        case "game24":
            return {"kind": "game24", "numbers": [_whole(n, what) for n in arg.split(",") if n.strip()]}
        case "sum-product":
            return {"kind": "sum-product", "count": _whole(arg, what)}
    raise ConfigurationError(f"unknown check {kind!r}; known checks: {', '.join(k for k in KINDS if k != 'all')}")


def _get(check: Mapping[str, Any], key: str) -> Any:
    if key not in check:
        raise ConfigurationError(f"check {dict(check)!r} is missing {key!r}")
    return check[key]


def verifier_from_check(check: str | Mapping[str, Any], *, allow_unguarded: bool = False) -> Verifier:
    """The verifier a check describes: a ``KIND:ARGUMENT`` string or a mapping with a ``kind``.

    Args:
        check: see the module docstring.
        allow_unguarded: let a ``tests`` check run code without network isolation where none can be had.

    Raises:
        ConfigurationError: an unknown kind, or a missing or malformed argument, named in the message.
    """
    from thinkloop.verifiers import constraints, numeric, puzzles, words
    from thinkloop.verifiers.combinators import AllOf

    spec = parse_check(check) if isinstance(check, str) else check
    kind = str(_get(spec, "kind")).lower()
    match kind:
        case "words":
            return words.WordCount(int(_get(spec, "n")), tolerance=int(spec.get("tolerance", 0)))
        case "regex" | "fullregex":
            return constraints.Matches(str(_get(spec, "pattern")), fullmatch=kind == "fullregex")
        case "number":
            return numeric.NumberWithin(
                float(_get(spec, "value")),
                tolerance=float(spec.get("tolerance", 1e-6)),
                relative=bool(spec.get("relative", False)),
            )
        case "tests":
            from thinkloop.verifiers.python_tests import PythonTests

            if "source" in spec:
                return PythonTests(str(spec["source"]), allow_unguarded=allow_unguarded)
            path = Path(str(_get(spec, "file")))
            if not path.is_file():
                raise ConfigurationError(f"check tests: {path}: no such file")
            return PythonTests.from_file(path, allow_unguarded=allow_unguarded)
        case "lowercase":
            return constraints.Lowercase()
        case "no-commas":
            return constraints.NoCommas()
        case "ends-with":
            return constraints.EndsWith(str(_get(spec, "word")))
        case "keyword":
            return constraints.KeywordCount(
                str(_get(spec, "word")),
                int(spec.get("times", 1)),
                mode="exactly" if spec.get("exactly") else "at_least",
            )
        case "game24":
            return puzzles.Game24([int(n) for n in _get(spec, "numbers")], target=int(spec.get("target", 24)))
        case "sum-product":
            return puzzles.SumProduct(
                int(_get(spec, "count")),
                total=spec.get("total"),
                product=spec.get("product"),
                distinct=bool(spec.get("distinct", False)),
            )
        case "all":
            parts = _get(spec, "checks")
            if not isinstance(parts, Sequence) or isinstance(parts, str) or not parts:
                raise ConfigurationError("check 'all' needs a non-empty list of checks")
            return AllOf(*(verifier_from_check(p, allow_unguarded=allow_unguarded) for p in parts))
    raise ConfigurationError(f"unknown check {kind!r}; known checks: {', '.join(KINDS)}")


def verifier_from_checks(checks: Sequence[str | Mapping[str, Any]] | None, **options: Any) -> Verifier | None:
    """One verifier for several checks (all must pass); ``None`` when there are none."""
    if not checks:
        return None
    if len(checks) == 1:
        return verifier_from_check(checks[0], **options)
    from thinkloop.verifiers.combinators import AllOf

    return AllOf(*(verifier_from_check(c, **options) for c in checks))


CHECKED_COT = {"max_rounds": 6, "temperature": 1.0}
"""Chain of thought under a check: up to 6 attempts, sampled at temperature 1 so a retry is not a repeat."""


def check_overrides(spec: str, verifier: Verifier | None) -> dict[str, Any]:
    """Options that make a strategy use a check: chain of thought re-prompts with the check's feedback
    (:data:`CHECKED_COT`, where the spec does not set them). Nothing for other strategies, or without a check."""
    name, _, options = spec.partition(":")
    if verifier is None or name.strip() != "cot":
        return {}
    given = {part.partition("=")[0].strip().replace("-", "_") for part in options.split(",")}
    return {key: value for key, value in CHECKED_COT.items() if key not in given}


def verdict_lines(graph: ReasoningGraph) -> list[str]:
    """One line per checked attempt, in order: ``attempt 1: rejected: You wrote 9 words; ...``."""
    lines = []
    verdicts = [node for node in graph.nodes() if node.kind == "verify"]
    for number, node in enumerate(verdicts, start=1):
        data = node.data or {}
        feedback = " ".join(str(data.get("feedback") or "").split())
        if len(feedback) > 160:
            feedback = feedback[:157] + "..."
        state = "accepted" if data.get("accepted") else "rejected"
        lines.append(inert(f"check {number}: {state}" + (f": {feedback}" if feedback else ""), one_line=True))
    return lines
