"""Exact checkers for number puzzles: Game of 24, and positive integers with a given sum and product.

Puzzles need search: a model proposes, the checker says exactly what is wrong, the search backtracks. The
checkers also give partial credit (the right numbers used, how close the value is), so a tree search can use
them to value unfinished steps (``TreeSearch(value="verifier")``) and prune hopeless branches.

Expressions are parsed with :mod:`ast` and evaluated with exact fractions; nothing the model writes is
executed.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.words import reply_subject

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_INTEGER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")


class _NotArithmetic(ValueError):
    pass


def _evaluate(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, used)
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, used), _evaluate(node.right, used)
        match node.op:
            case ast.Add():
                return left + right
            case ast.Sub():
                return left - right
            case ast.Mult():
                return left * right
        if right == 0:
            raise _NotArithmetic("it divides by zero")
        return left / right
    raise _NotArithmetic("only numbers, + - * / and parentheses are allowed")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """The exact value of an arithmetic expression and the numbers it uses, in order.

    ``×``, ``÷`` and an ``x`` between operands count as operators; ``= 24`` at the end is ignored.

    Raises:
        ValueError: the text is not an arithmetic expression over whole numbers.
    """
    expression = text.split("=")[0] if "=" in text else text
    expression = expression.replace("×", "*").replace("÷", "/").replace("−", "-").replace("\\times", "*")
    expression = re.sub(r"(?<=[\d)\s])[xX](?=[\s\d(])", "*", expression).strip().rstrip(".")
    if not expression:
        raise ValueError("there is no expression")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ValueError(f"{expression!r} is not an arithmetic expression") from None
    used: list[int] = []
    try:
        value = _evaluate(tree, used)
    except _NotArithmetic as exc:
        raise ValueError(f"{expression!r}: {exc}") from None
    return value, used


def solve_24(numbers: Sequence[int], target: int = 24) -> str | None:
    """An expression that makes ``target`` from ``numbers`` (each once, + - * /), or ``None``."""
    items = [(Fraction(n), str(n)) for n in numbers]

    def search(items: list[tuple[Fraction, str]]) -> str | None:
        if len(items) == 1:
            return items[0][1] if items[0][0] == target else None
        for i, j in itertools.permutations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            options = [(a + b, f"({ea} + {eb})"), (a - b, f"({ea} - {eb})"), (a * b, f"({ea} * {eb})")]
            if b != 0:
                options.append((a / b, f"({ea} / {eb})"))
            for value, text in options:
                found = search([*rest, (value, text)])
                if found is not None:
                    return found
        return None

    found = search(items)
    if found is not None and found.startswith("(") and found.endswith(")"):
        found = found[1:-1]
    return found


def _expression_in(text: str) -> str:
    """The reply's expression: its subject, else the last line that parses as arithmetic."""
    subject = reply_subject(text)
    try:
        evaluate_expression(subject)
        return subject
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        for part in (line, line.split(":")[-1]):
            try:
                evaluate_expression(part)
                return part
            except ValueError:
                continue
    return subject


class Game24:
    """Accepts an expression that uses each of ``numbers`` exactly once with + - * / and equals ``target``."""

    def __init__(self, numbers: Sequence[int], *, target: int = 24) -> None:
        if not numbers or any(not isinstance(n, int) for n in numbers):
            raise ConfigurationError(f"Game24 needs whole numbers, got {numbers!r}")
        self.numbers = tuple(numbers)
        self.target = target

    def __repr__(self) -> str:
        return f"Game24({list(self.numbers)}, target={self.target})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        expression = _expression_in(candidate.text).split("=")[0].strip()
        try:
            value, used = evaluate_expression(expression)
        except ValueError as exc:
            return Verdict.reject(
                f"The answer must be one arithmetic expression using {_listed(self.numbers)}: {exc}.", score=0.0
            )
        wanted, got = Counter(self.numbers), Counter(used)
        overlap = sum((wanted & got).values()) / len(self.numbers)
        closeness = 1.0 / (1.0 + float(abs(value - self.target)))
        if got != wanted:
            problems = []
            if wanted - got:
                problems.append(f"it does not use {_listed(sorted((wanted - got).elements()))}")
            if got - wanted:
                problems.append(f"it uses {_listed(sorted((got - wanted).elements()))}, which is not allowed")
            # A step that uses only given numbers is progress; one that invents numbers is not.
            score = 0.1 * overlap if got - wanted else 0.3 + 0.2 * overlap
            return Verdict.reject(
                f"Use each of {_listed(self.numbers)} exactly once: {'; '.join(problems)}.", score=score
            )
        if value != self.target:
            return Verdict.reject(f"{expression} = {_number(value)}, not {self.target}.", score=0.5 + 0.4 * closeness)
        return Verdict.accept(f"{expression} = {self.target}.")


class SumProduct:
    """Accepts ``count`` positive whole numbers whose sum equals their product (by default), or whose sum is
    ``total`` and product is ``product`` when those are given. ``distinct`` asks for different numbers."""

    def __init__(
        self, count: int = 3, *, total: int | None = None, product: int | None = None, distinct: bool = False
    ) -> None:
        if count < 1:
            raise ConfigurationError(f"SumProduct needs count >= 1, got {count}")
        self.count = count
        self.total = total
        self.product = product
        self.distinct = distinct

    def __repr__(self) -> str:
        return f"SumProduct({self.count}, total={self.total}, product={self.product}, distinct={self.distinct})"

    def numbers_in(self, text: str) -> list[float]:
        """The numbers the reply proposes: those before its first '=' when it shows its sum (1 + 2 + 3 = 6)."""
        subject = reply_subject(text)
        head = subject.split("=")[0] if "=" in subject else subject
        found = _INTEGER.findall(head) or _INTEGER.findall(subject)
        return [float(n) for n in found]

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        numbers = self.numbers_in(candidate.text)
        if len(numbers) != self.count:
            return Verdict.reject(
                f"Give exactly {self.count} positive whole numbers; the answer has {len(numbers)}.",
                score=0.1 if numbers else 0.0,
            )
        if any(n <= 0 or n != int(n) for n in numbers):
            return Verdict.reject("Every number must be a positive whole number.", score=0.2)
        ints = [int(n) for n in numbers]
        if self.distinct and len(set(ints)) != len(ints):
            return Verdict.reject(f"The numbers must all be different; {_listed(ints)} repeats one.", score=0.3)
        total, product = sum(ints), math.prod(ints)
        shown = f"{' + '.join(map(str, ints))} = {total} and {' × '.join(map(str, ints))} = {product}"
        problems = []
        if self.total is None and self.product is None and total != product:
            problems.append("the sum must equal the product")
        if self.total is not None and total != self.total:
            problems.append(f"the sum must be {self.total}")
        if self.product is not None and product != self.product:
            problems.append(f"the product must be {self.product}")
        if problems:
            gap = (
                abs(total - product)
                if self.total is None and self.product is None
                else (abs(total - (self.total or total)) + abs(product - (self.product or product)))
            )
            return Verdict.reject(f"{shown}, but {' and '.join(problems)}.", score=0.3 + 0.6 / (1 + gap))
        return Verdict.accept(f"{shown}.")


def _listed(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
