"""Test doubles shared by several test modules (one copy, not one per file)."""

from __future__ import annotations

from thinkloop import Candidate, RunContext, Verdict


class AcceptAnswer:
    """A verifier that accepts exactly one answer and remembers every answer it saw."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.seen: list[str | None] = []

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        self.seen.append(candidate.answer)
        if candidate.answer == self.answer:
            return Verdict.accept()
        return Verdict.reject(f"{candidate.answer} is not right", score=0.25)
