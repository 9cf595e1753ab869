"""Write the verifiable-tasks data set: tasks whose answer a program can check, each carrying its check.

    python scripts/make_verifiable_tasks.py            # writes src/thinkloop/bench/data/verifiable/test.jsonl
    python scripts/make_verifiable_tasks.py --per-family 20 --out /tmp/small.jsonl

Seeded, so the committed file is reproducible byte for byte (a test regenerates it and compares). Families:

- ``words``: one sentence about a topic in exactly N words (a word counter);
- ``constraints``: IFEval-style instructions: lowercase, no commas, ends with a word, a keyword twice;
- ``game24``: make 24 from four numbers (solvable sets only; an exact expression checker);
- ``sumproduct``: positive integers with a given sum and product, or whose sum equals their product;
- ``code``: a small Python function that must pass given asserts in the program sandbox;
- ``ph``: the pH of a strong acid or base solution, within 0.05 of the checker's own computation.

Each line: ``id``, ``family``, ``question``, ``answer`` (a reference solution or a description of what
passes: for people and reports, never used to judge), ``check`` (what
:func:`thinkloop.verifiers.spec.verifier_from_check` builds the verifier from).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from thinkloop.verifiers.puzzles import solve_24  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "thinkloop" / "bench" / "data" / "verifiable" / "test.jsonl"
SEED = 20261201

TOPICS = [
    "the sea",
    "a cat",
    "rain",
    "the moon",
    "coffee",
    "a library",
    "winter",
    "a bicycle",
    "the forest",
    "music",
    "a river",
    "bread",
    "the city at night",
    "a garden",
    "mountains",
    "a train",
    "the sun",
    "snow",
    "a dog",
    "friendship",
    "the desert",
    "a clock",
    "books",
    "the wind",
    "a bridge",
    "tea",
    "the ocean",
    "a candle",
    "spring",
    "a market",
]
END_WORDS = ["today", "again", "slowly", "home", "forever", "tonight", "together", "outside", "now", "here"]
KEYWORDS = ["light", "water", "time", "green", "quiet", "warm", "small", "old", "bright", "soft"]

# name, what it does, reference implementation, argument makers
CODE_TASKS: list[tuple[str, str, str, Any]] = [
    (
        "add",
        "returns the sum of a and b",
        "def add(a, b):\n    return a + b",
        lambda r: (r.randint(-50, 50), r.randint(-50, 50)),
    ),
    (
        "multiply",
        "returns the product of a and b",
        "def multiply(a, b):\n    return a * b",
        lambda r: (r.randint(-12, 12), r.randint(-12, 12)),
    ),
    (
        "subtract",
        "returns a minus b",
        "def subtract(a, b):\n    return a - b",
        lambda r: (r.randint(-50, 50), r.randint(-50, 50)),
    ),
    ("square", "returns n squared", "def square(n):\n    return n * n", lambda r: (r.randint(-20, 20),)),
    (
        "is_even",
        "returns True if n is even and False otherwise",
        "def is_even(n):\n    return n % 2 == 0",
        lambda r: (r.randint(-30, 30),),
    ),
    (
        "maximum",
        "returns the largest number in the non-empty list xs",
        "def maximum(xs):\n    return max(xs)",
        lambda r: ([r.randint(-20, 20) for _ in range(r.randint(1, 6))],),
    ),
    (
        "total",
        "returns the sum of the numbers in the list xs",
        "def total(xs):\n    return sum(xs)",
        lambda r: ([r.randint(-20, 20) for _ in range(r.randint(0, 6))],),
    ),
    (
        "reverse",
        "returns the string s reversed",
        "def reverse(s):\n    return s[::-1]",
        lambda r: ("".join(r.choice("abcdefgh") for _ in range(r.randint(0, 7))),),
    ),
    (
        "count_vowels",
        "returns how many of the letters a, e, i, o, u are in the lowercase string s",
        "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)",
        lambda r: ("".join(r.choice("abcdeiouxyz") for _ in range(r.randint(0, 9))),),
    ),
    (
        "factorial",
        "returns n! for a whole number n >= 0",
        "def factorial(n):\n    import math\n    return math.factorial(n)",
        lambda r: (r.randint(0, 8),),
    ),
    (
        "absolute",
        "returns the absolute value of n",
        "def absolute(n):\n    return abs(n)",
        lambda r: (r.randint(-40, 40),),
    ),
    (
        "first",
        "returns the first item of the non-empty list xs",
        "def first(xs):\n    return xs[0]",
        lambda r: ([r.randint(0, 9) for _ in range(r.randint(1, 5))],),
    ),
    (
        "length",
        "returns the number of characters in the string s",
        "def length(s):\n    return len(s)",
        lambda r: ("".join(r.choice("xyz ") for _ in range(r.randint(0, 9))),),
    ),
    ("double", "returns n times two", "def double(n):\n    return 2 * n", lambda r: (r.randint(-30, 30),)),
    (
        "is_positive",
        "returns True if n is greater than zero and False otherwise",
        "def is_positive(n):\n    return n > 0",
        lambda r: (r.randint(-10, 10),),
    ),
    (
        "to_upper",
        "returns the string s in upper case",
        "def to_upper(s):\n    return s.upper()",
        lambda r: ("".join(r.choice("abc xyz") for _ in range(r.randint(0, 8))),),
    ),
    (
        "minimum",
        "returns the smallest number in the non-empty list xs",
        "def minimum(xs):\n    return min(xs)",
        lambda r: ([r.randint(-20, 20) for _ in range(r.randint(1, 6))],),
    ),
    (
        "average",
        "returns the mean of the numbers in the non-empty list xs",
        "def average(xs):\n    return sum(xs) / len(xs)",
        lambda r: ([r.randint(0, 10) for _ in range(r.randint(1, 4))],),
    ),
    (
        "fibonacci",
        "returns the n-th Fibonacci number, where fibonacci(0) == 0 and fibonacci(1) == 1",
        "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        lambda r: (r.randint(0, 15),),
    ),
    (
        "count_words",
        "returns how many space-separated words are in the string s",
        "def count_words(s):\n    return len(s.split())",
        lambda r: (" ".join(r.choice(["a", "bb", "ccc"]) for _ in range(r.randint(0, 5))),),
    ),
]


def words_task(r: random.Random) -> tuple[str, str, dict[str, Any]]:
    topic, n = r.choice(TOPICS), r.randint(4, 12)
    question = f"Write one sentence about {topic} in exactly {n} words."
    return question, f"any sentence of exactly {n} words", {"kind": "words", "n": n}


def constraints_task(r: random.Random) -> tuple[str, str, dict[str, Any]]:
    topic = r.choice(TOPICS)
    options = ["lowercase", "no-commas", "ends-with", "keyword"]
    chosen = sorted(r.sample(options, r.randint(2, 3)), key=options.index)
    rules, checks = [], []
    for option in chosen:
        if option == "lowercase":
            rules.append("use only lowercase letters")
            checks.append({"kind": "lowercase"})
        elif option == "no-commas":
            rules.append("do not use any commas")
            checks.append({"kind": "no-commas"})
        elif option == "ends-with":
            word = r.choice(END_WORDS)
            rules.append(f"end with the word '{word}'")
            checks.append({"kind": "ends-with", "word": word})
        else:
            word = r.choice(KEYWORDS)
            rules.append(f"use the word '{word}' at least twice")
            checks.append({"kind": "keyword", "word": word, "times": 2})
    question = f"Write one sentence about {topic}. Rules: " + "; ".join(rules) + "."
    return question, "a sentence that follows every rule", {"kind": "all", "checks": checks}


def game24_task(r: random.Random) -> tuple[str, str, dict[str, Any]]:
    while True:
        numbers = sorted(r.randint(1, 13) for _ in range(4))
        solution = solve_24(numbers)
        if solution is not None:
            break
    listed = ", ".join(map(str, numbers))
    question = (
        f"Use the numbers {listed} each exactly once, with +, -, *, / and parentheses, to make 24. "
        "Give the expression as the answer."
    )
    return question, solution, {"kind": "game24", "numbers": numbers}


def sumproduct_task(r: random.Random) -> tuple[str, str, dict[str, Any]]:
    if r.random() < 0.2:
        count = r.randint(2, 5)
        question = (
            f"Find {count} positive whole numbers whose sum equals their product. Give the numbers as the answer."
        )
        known = {2: "2, 2", 3: "1, 2, 3", 4: "1, 1, 2, 4", 5: "1, 1, 1, 2, 5"}
        return question, known[count], {"kind": "sum-product", "count": count}
    numbers = sorted(r.randint(1, 9) for _ in range(3))
    total, product = sum(numbers), math.prod(numbers)
    question = (
        f"Find three positive whole numbers whose sum is {total} and whose product is {product}. "
        "Give the three numbers as the answer."
    )
    return (
        question,
        ", ".join(map(str, numbers)),
        {"kind": "sum-product", "count": 3, "total": total, "product": product},
    )


def code_task(r: random.Random, index: int) -> tuple[str, str, dict[str, Any]]:
    name, does, reference, make_args = CODE_TASKS[index % len(CODE_TASKS)]
    namespace: dict[str, Any] = {}
    exec(reference, namespace)  # our own reference solution, to compute the expected values
    function = namespace[name]
    cases: list[tuple[Any, ...]] = []
    for _ in range(40):
        args = make_args(r)
        if args not in cases:
            cases.append(args)
        if len(cases) == 3:
            break
    tests = "\n".join(f"assert {name}({', '.join(map(repr, args))}) == {function(*args)!r}" for args in cases)
    example = cases[0]
    question = (
        f"Write a Python function {name}({', '.join(reference.split('(')[1].split(')')[0].split(', '))}) "
        f"that {does}. For example, {name}({', '.join(map(repr, example))}) should return "
        f"{function(*example)!r}. Give the code in a ```python block."
    )
    return question, reference, {"kind": "tests", "source": tests}


def ph_task(r: random.Random) -> tuple[str, str, dict[str, Any]]:
    mantissa = r.choice([1, 1, 1, 2, 5])
    exponent = r.randint(1, 5)
    concentration = mantissa * 10**-exponent
    shown = f"{concentration:.{exponent}f}".rstrip("0") if exponent <= 5 else f"{concentration:g}"
    if r.random() < 0.6:
        acid = r.choice(["HCl", "HNO3", "HBr"])
        ph = -math.log10(concentration)
        question = f"What is the pH of a {shown} M solution of {acid}, a strong acid, at 25 °C?"
    else:
        base = r.choice(["NaOH", "KOH"])
        ph = 14 + math.log10(concentration)
        question = f"What is the pH of a {shown} M solution of {base}, a strong base, at 25 °C?"
    question += " Give the pH as a number with two decimals."
    return question, f"{ph:.2f}", {"kind": "number", "value": round(ph, 4), "tolerance": 0.05}


FAMILIES = ("words", "constraints", "game24", "sumproduct", "code", "ph")


def make_tasks(per_family: int, seed: int = SEED) -> list[dict[str, Any]]:
    rows = []
    for family in FAMILIES:
        r = random.Random(f"{seed}-{family}")
        seen: set[str] = set()
        for index in itertools.count():
            if len(seen) == per_family or index > per_family * 50:
                break
            match family:
                case "words":
                    question, answer, check = words_task(r)
                case "constraints":
                    question, answer, check = constraints_task(r)
                case "game24":
                    question, answer, check = game24_task(r)
                case "sumproduct":
                    question, answer, check = sumproduct_task(r)
                case "code":
                    question, answer, check = code_task(r, index)
                case _:
                    question, answer, check = ph_task(r)
            if question in seen:
                continue
            seen.add(question)
            rows.append(
                {
                    "id": f"{family}-{len(seen):03d}",
                    "family": family,
                    "question": question,
                    "answer": answer,
                    "check": check,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-family", type=int, default=60, help="tasks per family (default 60)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows = make_tasks(args.per_family, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} tasks to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
