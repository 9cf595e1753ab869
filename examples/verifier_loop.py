"""A verifier-gated loop on the embedded default model (SmolLM2-135M, in-process), and the path to its answer.

Chain of thought re-prompts the model, showing it the verifier's feedback, until the verifier accepts or
three rounds are spent; a hard token budget caps the whole run. The verifier wants a stated numeric answer
and the right number. Then the run's graph is asked for the path that led to the
answer, and each step on it is printed with the verdict it got.

    python examples/verifier_loop.py

SmolLM2-135M is tiny: it may well not get there in three rounds. The run then stops with
``stop=max_rounds`` (or ``budget``) and still returns its best answer so far.
"""

from thinkloop import Budget, ChainOfThought
from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.verifiers import AllOf, AnswerPresent, MathAnswerVerifier

QUESTION = "Tom has 3 apples and buys 2 more. How many apples does he have?"

# The gate checks that the reply states a number the runtime reads as its answer ("Answer: 5", "The answer is
# 5"), not the exact shape of a line: a shape check would reject a right answer before the reference saw it.
verifier = AllOf(
    AnswerPresent(numeric=True),
    MathAnswerVerifier("5"),
    concurrent=False,  # no point checking the number when there is none
)
result = ChainOfThought(max_rounds=3, max_tokens=128, temperature=0.0).run_sync(
    QUESTION, backend=LlamaCppBackend(), verifier=verifier, budget=Budget(tokens=3_000)
)

print(
    f"answer={result.answer!r} stop={result.stop_reason} calls={result.usage.calls} "
    f"tokens={result.usage.total_tokens} ({result.latency_s:.1f} s)"
)
graph = result.graph


def verdicts(node_id: int) -> str:
    """The verdicts hanging under a node, as one short string."""
    found = [graph.node(child) for child in graph.nx.successors(node_id) if graph.node(child).kind == "verify"]
    return (
        "; ".join("accepted" if v.data["accepted"] else f"rejected: {v.data['feedback']}" for v in found)
        or "not verified"
    )


print("rounds:")
for node in graph.nodes():
    if node.kind == "generate":
        ending = " ".join((node.text or "").split())[-70:]
        print(
            f"  #{node.id} round {node.data['round'] + 1}: answer={node.answer!r} ...{ending!r}\n"
            f"      {verdicts(node.id)}"
        )
print("path to the answer:")
for node in result.answer_path():
    what = repr(node.text) if node.kind == "question" else f"answer={node.answer!r}"
    print(f"  #{node.id} {node.kind:<8} depth={node.depth} {node.status:<6} {what}")
print(f"graph: {len(graph)} nodes, depth {graph.depth()}")
