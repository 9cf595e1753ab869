"""An open question with no checkable answer: an LLM judge decides, critique-and-revise improves the answer,
and every step (answer, verdict, revision) is in the trace.

The judge here is the same tiny model, so treat its verdicts as a demonstration of the loop, not as
evidence; point ``LLMJudge(backend=...)`` at a stronger model for real use.

    python examples/judged_answer.py
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from thinkloop import Budget, CritiqueRevise, LLMJudge, load_trace
from thinkloop.backends.base import Backend
from thinkloop.runtime.result import Result

QUESTION = "Why do we have seasons on Earth? Answer in two sentences."


def main(backend: Backend | None = None) -> Result:
    if backend is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
    judge = LLMJudge(max_tokens=64)
    strategy = CritiqueRevise(max_rounds=1, max_tokens=80, critic="verifier")
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "run.jsonl"
        result = strategy.run_sync(
            QUESTION, backend=backend, verifier=judge, budget=Budget(tokens=4_000), trace_path=trace
        )
        events = list(load_trace(trace))
    steps = Counter(e.node.kind for e in events if e.kind == "node" and e.node.status == "done")
    for node in result.graph.nodes():
        if node.kind in ("generate", "revise"):
            print(f"[{node.kind}] {(node.text or '').strip()[:100]!r}")
        elif node.kind == "verify" and node.data and "accepted" in node.data:
            print(f"[judge] {'accepted' if node.data['accepted'] else 'rejected'} (score {node.score})")
    print(f"trace: {len(events)} events; steps: {dict(sorted(steps.items()))}")
    print(
        f"answer={result.answer!r} stop={result.stop_reason} calls={result.usage.calls} "
        f"tokens={result.usage.total_tokens}"
    )
    return result


if __name__ == "__main__":
    main()
