"""Number puzzles with tree search, backtracking and an exact checker.

Two puzzles: Game of 24 (make 24 from 4, 7, 8, 8 with + - * /, each number once) and "three different
positive whole numbers whose sum equals their product". The model proposes steps; the checker values each
partial solution (the right numbers used? how close to the target?), so depth-first search prunes hopeless
branches, backtracks, and stops at the first answer the checker accepts. Nothing the model writes is run: the
checker parses the arithmetic.

    python examples/number_puzzles.py

On the embedded SmolLM2-135M the search usually ends without an accepted answer: the model rarely writes
well-formed arithmetic steps, so most branches are pruned as hopeless (the output counts them). The checker
and the search are what carry over to a real model; ``tests/test_examples_cases.py`` drives the same script
with scripted steps to show a wrong final answer rejected, the search backtracking, and the exact solution
accepted.
"""

from __future__ import annotations

from thinkloop import Budget, TreeSearch
from thinkloop.backends.base import Backend
from thinkloop.runtime.result import Result
from thinkloop.verifiers.base import Verifier
from thinkloop.verifiers.puzzles import Game24, SumProduct, solve_24

PUZZLES: list[tuple[str, Verifier]] = [
    (
        "Use the numbers 4, 7, 8, 8 each exactly once, with +, -, *, / and parentheses, to make 24.",
        Game24([4, 7, 8, 8]),
    ),
    ("Find three different positive whole numbers whose sum equals their product.", SumProduct(3, distinct=True)),
]


def solve(question: str, checker: Verifier, backend: Backend) -> Result:
    search = TreeSearch(
        mode="dfs", value="verifier", branching=3, max_depth=2, prune_below=0.2, max_tokens=40, temperature=0.9
    )
    result = search.run_sync(question, backend=backend, verifier=checker, budget=Budget(tokens=3_000))
    kinds = [node.kind for node in result.graph.nodes()]
    pruned = sum(node.status == "pruned" for node in result.graph.nodes())
    verdict = result.candidate.feedback if result.candidate is not None else None
    print(f"puzzle: {question}")
    print(f"  answer={result.answer!r} accepted={result.candidate.accepted if result.candidate else None} ({verdict})")
    print(
        f"  steps proposed={kinds.count('expand')} pruned={pruned} backtracks={kinds.count('backtrack')} "
        f"stop={result.stop_reason} calls={result.usage.calls} tokens={result.usage.total_tokens}"
    )
    return result


def main(backend: Backend | None = None) -> list[Result]:
    if backend is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
    print(f"(a solution the checker accepts for the first puzzle: {solve_24([4, 7, 8, 8])})")
    return [solve(question, checker, backend) for question, checker in PUZZLES]


if __name__ == "__main__":
    main()
