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


# A Game-of-24 style puzzle with numbers 1 2 3 4. Each step leaves fewer numbers; the final step states an
# expression. Only the branch through "2 * 3 = 6" reaches 24; the two higher-valued branches are dead ends.
TREE = {
    "": ["1 + 2 = 3 (left: 3 3 4)", "4 - 1 = 3 (left: 2 3 3)", "2 * 3 = 6 (left: 1 4 6)", "4 / 4 = 1 (left: 1 1 2)"],
    "1 + 2 = 3 (left: 3 3 4)": ["Answer: (1 + 2) * 3 + 4", "Answer: (1 + 2) + 3 * 4"],
    "4 - 1 = 3 (left: 2 3 3)": ["Answer: (4 - 1) * 3 * 2"],
    "2 * 3 = 6 (left: 1 4 6)": ["6 * 4 = 24 (left: 1 24)", "6 + 4 = 10 (left: 1 10)"],
    "6 * 4 = 24 (left: 1 24)": ["Answer: 2 * 3 * 4 * 1"],
    "6 + 4 = 10 (left: 1 10)": ["Answer: (2 * 3 + 4) * 1"],
}
VALUE = {
    "1 + 2 = 3 (left: 3 3 4)": 0.9,
    "4 - 1 = 3 (left: 2 3 3)": 0.8,
    "2 * 3 = 6 (left: 1 4 6)": 0.6,
    "4 / 4 = 1 (left: 1 1 2)": 0.1,
    "6 * 4 = 24 (left: 1 24)": 0.9,
    "6 + 4 = 10 (left: 1 10)": 0.5,
}
