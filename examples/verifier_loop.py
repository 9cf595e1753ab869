"""A verifier-gated loop on the embedded default model (SmolLM2-135M, in-process), and the path to its answer.

Chain of thought re-prompts the model, showing it the verifier's feedback, until the verifier accepts or
three rounds are spent; a hard token budget caps the whole run. The verifier wants a last line
``Answer: <number>`` and the right number. Then the run's graph is asked for the path that led to the
answer, and each step on it is printed with the verdict it got.

    python examples/verifier_loop.py

SmolLM2-135M is tiny: it may well not get there in three rounds. The run then stops with
``stop=max_rounds`` (or ``budget``) and still returns its best answer so far.
"""

import re

from thinkloop import Budget, ChainOfThought
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.verifiers import AllOf, FormatVerifier, MathAnswerVerifier

QUESTION = "Tom has 3 apples and buys 2 more. How many apples does he have?"

verifier = AllOf(
    FormatVerifier(
        r"^\s*Answer:\s*-?\d+(?:\.\d+)?\s*\.?\s*$",
        flags=re.MULTILINE,
        feedback="End with a last line of the form 'Answer: <number>'.",
    ),
    MathAnswerVerifier("5"),
    concurrent=False,  # no point checking the number when the format is wrong
)
result = ChainOfThought(max_rounds=3, max_tokens=128, temperature=0.0).run_sync(
    QUESTION, backend=LlamaCppBackend(), verifier=verifier, budget=Budget(tokens=3_000)
)

print(f"answer={result.answer!r} stop={result.stop_reason} calls={result.usage.calls} "
      f"tokens={result.usage.total_tokens} ({result.latency_s:.1f} s)")
graph = result.graph


def verdicts(node_id: int) -> str:
    """The verdicts hanging under a node, as one short string."""
    found = [graph.node(child) for child in graph.nx.successors(node_id) if graph.node(child).kind == "verify"]
    return "; ".join(
        "accepted" if v.data["accepted"] else f"rejected: {v.data['feedback']}" for v in found
    ) or "not verified"


print("rounds:")
for node in graph.nodes():
    if node.kind == "generate":
        last_line = (node.text or "").strip().splitlines()[-1:] or [""]
        print(f"  #{node.id} answer={node.answer!r} last line={last_line[0][:60]!r}\n      {verdicts(node.id)}")
print("path to the answer:")
for node in result.answer_path():
    what = repr(node.text) if node.kind == "question" else f"answer={node.answer!r}"
    print(f"  #{node.id} {node.kind:<8} depth={node.depth} {node.status:<6} {what}")
print(f"graph: {len(graph)} nodes, depth {graph.depth()}")
