"""Best-of-n on the embedded default model: 4 candidates, each scored by the same model acting as an LLM judge.

python examples/best_of_n.py
"""

from thinkloop import Budget
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.strategies.best_of_n import BestOfN

result = BestOfN(n=4, max_tokens=96).run_sync(
    "What is the capital of France?", backend=LlamaCppBackend(), budget=Budget(tokens=6_000)
)
select = result.answer_path()[-1]
print(f"answer={result.answer!r} score={result.candidate.score} scores={select.data['scores']}")
print(f"stop={result.stop_reason} calls={result.usage.calls} tokens={result.usage.total_tokens}")
