"""Instruction following with checkable constraints (IFEval-style), composed into one verifier.

Each rule is a small verifier and ``AllOf`` composes them: a reply is accepted only when every rule holds,
and a rejected reply gets every complaint at once. Best-of-n draws eight replies and keeps one that passes.
(SmolLM2-135M capitalises the first word of nearly every sentence, so "all lowercase" is left out here; the
verifiable benchmark measures it.)

    python examples/instruction_following.py
"""

from __future__ import annotations

from thinkloop import BestOfN, Budget
from thinkloop.backends.base import Backend
from thinkloop.runtime.result import Result
from thinkloop.verifiers import AllOf
from thinkloop.verifiers.constraints import KeywordCount, NoCommas
from thinkloop.verifiers.words import reply_subject

QUESTION = "Write one sentence about the sea. Rules: do not use commas; use the word 'sea' at least twice."
RULES = AllOf(NoCommas(), KeywordCount("sea", 2))


def main(backend: Backend | None = None) -> Result:
    if backend is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
    strategy = BestOfN(n=8, max_tokens=40, temperature=1.0, system_prompt="Reply with one sentence only.")
    result = strategy.run_sync(QUESTION, backend=backend, verifier=RULES, budget=Budget(tokens=4_000))
    for node in result.graph.nodes():
        if node.kind == "verify":
            text = reply_subject(result.graph.node(node.parents[0]).text or "") if node.parents else ""
            verdict = (
                "accepted" if node.data["accepted"] else "rejected: " + " ".join((node.data["feedback"] or "").split())
            )
            print(f"reply: {text[:70]!r} -> {verdict}")
    accepted = result.candidate.accepted if result.candidate else None
    print(
        f"answer={reply_subject(result.text or '')!r} accepted={accepted} "
        f"stop={result.stop_reason} calls={result.usage.calls} tokens={result.usage.total_tokens}"
    )
    return result


if __name__ == "__main__":
    main()
