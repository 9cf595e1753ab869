"""Critique and revise on the embedded default model: answer, let the model critique itself, revise.

python examples/critique_revise.py
"""

from thinkloop import Budget
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.strategies.critique import CritiqueRevise

result = CritiqueRevise(max_rounds=2, max_tokens=128).run_sync(
    "A pen costs 2 dollars. How much do 4 pens cost?", backend=LlamaCppBackend(), budget=Budget(tokens=6_000)
)
for node in result.graph.nodes():
    if node.kind in ("generate", "critique", "revise"):
        print(f"[{node.kind}] {(node.text or '').strip()[:120]!r}")
print(f"answer={result.answer!r} stop={result.stop_reason} versions={result.data['versions']}")
