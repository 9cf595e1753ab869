"""Tree search with backtracking on the embedded default model: the model proposes next steps, rates them
(self-evaluation), and depth-first search backtracks out of low-valued branches. The trace shows each
backtrack and pruned branch.

    python examples/tree_search.py
"""

from thinkloop import Budget
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.strategies.tree_search import TreeSearch

result = TreeSearch(mode="dfs", branching=2, max_depth=2, max_tokens=64).run_sync(
    "What is 10 - 4?", backend=LlamaCppBackend(), budget=Budget(tokens=8_000)
)
kinds = [node.kind for node in result.graph.nodes()]
print(
    f"answer={result.answer!r} stop={result.stop_reason} nodes={len(kinds)} "
    f"backtracks={kinds.count('backtrack')} pruned={len(result.graph.pruned())}"
)
for node in result.answer_path():
    print(f"  {node.kind:9} {(node.text or '').strip()[:100]!r}")
