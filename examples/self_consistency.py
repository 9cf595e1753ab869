"""Self-consistency on the embedded default model: 8 samples, majority vote; then the adaptive variant,
which stops sampling once the vote is decided.

    python examples/self_consistency.py
"""

from thinkloop import Budget
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.strategies.self_consistency import SelfConsistency

question = "What is 6 + 7?"
backend = LlamaCppBackend()
for strategy in (SelfConsistency(n=8, max_tokens=96), SelfConsistency(n=8, adaptive=True, max_tokens=96)):
    result = strategy.run_sync(question, backend=backend, budget=Budget(tokens=8_000))
    print(
        f"{result.strategy}: answer={result.answer!r} votes={result.data['votes']} "
        f"samples={result.data['samples']} stop={result.stop_reason} tokens={result.usage.total_tokens}"
    )
