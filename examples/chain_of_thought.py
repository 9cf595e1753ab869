"""Chain of thought on the embedded default model (SmolLM2-135M, in-process): one step-by-step call.

python examples/chain_of_thought.py
"""

from thinkloop import Budget, ChainOfThought
from thinkloop.backends.llamacpp import LlamaCppBackend

result = ChainOfThought(max_tokens=128, temperature=0.0).run_sync(
    "Tom has 3 apples and buys 2 more. How many apples does he have?",
    backend=LlamaCppBackend(),
    budget=Budget(tokens=2_000),
)
print(result.text)
print(f"answer={result.answer!r} stop={result.stop_reason} tokens={result.usage.total_tokens}")
