"""Exact word counts: the model writes, a counter checks and says how far off it was, the model revises.

A model sees tokens, not words, so "exactly 10 words" is luck for it on the first try. The counter's feedback
("You wrote 5 words; it must be exactly 10: add 5 words.") goes back to the model with each retry, sampled at
temperature 1 so a retry is not a repeat, until the count is right or six attempts are spent. The same as
``thinkloop ask "..." --check words:10``.

    python examples/word_count.py
"""

from __future__ import annotations

from thinkloop import Budget, ChainOfThought
from thinkloop.backends.base import Backend
from thinkloop.runtime.result import Result
from thinkloop.verifiers.words import WordCount, count_words, reply_subject

QUESTION = "Write one sentence about the night sky in exactly 10 words."
WORDS = 10
ATTEMPTS = 6


def main(backend: Backend | None = None) -> Result:
    if backend is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
    strategy = ChainOfThought(max_rounds=ATTEMPTS, max_tokens=48, temperature=1.0)
    result = strategy.run_sync(QUESTION, backend=backend, verifier=WordCount(WORDS), budget=Budget(tokens=4_000))
    for node in result.graph.nodes():
        if node.kind == "verify":
            attempt = result.graph.node(node.parents[0]) if node.parents else None
            text = reply_subject(attempt.text or "") if attempt is not None else ""
            verdict = "accepted" if node.data["accepted"] else f"rejected: {node.data['feedback']}"
            print(f"attempt: {text[:70]!r} ({count_words(text)} words) -> {verdict}")
    answer = reply_subject(result.text or "")
    print(
        f"answer={answer!r} words={count_words(answer)} stop={result.stop_reason} "
        f"calls={result.usage.calls} tokens={result.usage.total_tokens}"
    )
    return result


if __name__ == "__main__":
    main()
