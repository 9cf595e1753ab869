"""Code that must run: a small function, checked by running the given tests in the program sandbox.

Imports must resolve (a model that invents a library is told the module does not exist), the program runs
with no network under time and memory limits, and every failing test comes back as feedback
("assert is_even(3) == False: got True, expected False") for the next revision.

    python examples/code_tests.py
"""

from __future__ import annotations

from thinkloop import Budget, CritiqueRevise
from thinkloop.backends.base import Backend
from thinkloop.runtime.result import Result
from thinkloop.verifiers.python_tests import PythonTests

QUESTION = (
    "Write a Python function is_even(n) that returns True if the whole number n is even and False otherwise. "
    "Give the code in a ```python block."
)
TESTS = """
assert is_even(4) == True
assert is_even(3) == False
assert is_even(0) == True
assert is_even(-7) == False
"""


def main(backend: Backend | None = None) -> Result:
    if backend is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
    strategy = CritiqueRevise(
        max_rounds=3,
        max_tokens=96,
        temperature=0.7,
        critic="verifier",
        system_prompt="You write correct, short Python code using only the standard library.",
    )
    result = strategy.run_sync(QUESTION, backend=backend, verifier=PythonTests(TESTS), budget=Budget(tokens=5_000))
    for node in result.graph.nodes():
        if node.kind == "verify":
            state = "passed" if node.data["accepted"] else "failed"
            feedback = " | ".join((node.data["feedback"] or "").strip().splitlines()[:3])
            print(f"version {state}: {feedback[:160]}")
    accepted = result.candidate.accepted if result.candidate else None
    print(
        f"answer accepted={accepted} stop={result.stop_reason} versions={result.data['versions']} "
        f"calls={result.usage.calls} tokens={result.usage.total_tokens}"
    )
    return result


if __name__ == "__main__":
    main()
