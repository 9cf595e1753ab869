"""A numeric science question with one right number: the pH of a strong acid, checked against the
verifier's own computation (pH = -log10[H+]) within a tolerance.

The reference is computed here, never taken from the model; the check accepts any answer within 0.05 of it
("3", "3.0", "pH = 3.00"). Best-of-n with the check stops at the first answer that passes.

    python examples/ph.py
"""

from __future__ import annotations

import math

from thinkloop import BestOfN, Budget
from thinkloop.backends.base import Backend
from thinkloop.runtime.result import Result
from thinkloop.verifiers.numeric import NumberWithin

CONCENTRATION = 0.001  # mol/L of HCl, a strong acid: fully dissociated, so [H+] = 0.001
QUESTION = (
    f"HCl is a strong acid, so in a {CONCENTRATION} M solution [H+] = {CONCENTRATION} M = 10^-3 M. "
    "What is the pH (pH = -log10[H+])? Give the pH as a number."
)


def ph_of_strong_acid(molar: float) -> float:
    """pH = -log10 of the hydrogen ion concentration (water's own 1e-7 is negligible above 1e-6 M)."""
    return -math.log10(molar)


def main(backend: Backend | None = None) -> Result:
    if backend is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
    expected = ph_of_strong_acid(CONCENTRATION)
    checker = NumberWithin(expected, tolerance=0.05)
    strategy = BestOfN(n=8, max_tokens=64, temperature=0.8)
    result = strategy.run_sync(QUESTION, backend=backend, verifier=checker, budget=Budget(tokens=4_000))
    tried = [node.answer for node in result.graph.nodes() if node.kind == "verify"]
    print(f"the checker's pH: {expected:.2f}; answers tried: {tried}")
    print(
        f"answer={result.answer!r} accepted={result.candidate.accepted if result.candidate else None} "
        f"stop={result.stop_reason} calls={result.usage.calls} tokens={result.usage.total_tokens}"
    )
    return result


if __name__ == "__main__":
    main()
