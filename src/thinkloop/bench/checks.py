"""Problems judged by a check instead of a gold answer (the ``verifiable`` set, or ``bench run --check``).

The run gets the check as its verifier, so verifier-gated strategies (best-of-n, critique-and-revise, tree
search, chain of thought with rounds) can use it; strategies that ignore verifiers (self-consistency) just
vote. Either way the record's ``correct`` is the check's verdict on the run's final answer (the run's own
verdict when the strategy checked it, else checked here), so every strategy is scored by the same rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thinkloop.verifiers.base import Verifier

if TYPE_CHECKING:
    from thinkloop.bench.datasets import Problem
    from thinkloop.bench.store import Record
    from thinkloop.runtime.result import Result

ANSWER_PLACEHOLDER = "{answer}"
"""In a ``--check`` given for a whole data set, stands for each problem's gold answer (``number:{answer}+-0.5``)."""


def problem_verifier(problem: Problem, check: str | None = None) -> Verifier | None:
    """The problem's own check, else the data set-wide ``check`` with its gold answer filled in."""
    from thinkloop.verifiers.spec import verifier_from_check

    if problem.check is not None:
        return verifier_from_check(problem.check)
    if check is not None:
        return verifier_from_check(check.replace(ANSWER_PLACEHOLDER, problem.answer))
    return None


async def judged(record: Record, result: Result, verifier: Verifier, question: str) -> Record:
    """The record with ``correct`` set by the check, and ``pass_at_k`` by whether any attempt passed it."""
    if record.status != "done":
        return record
    correct = False
    candidate = result.candidate
    if candidate is not None and candidate.accepted is not None:
        correct = candidate.accepted  # the run checked its answer with this same verifier: one verdict, not two
    elif candidate is not None:  # the strategy did not check it (self-consistency votes): check it here
        correct = (await verifier.verify(question, candidate, None)).accepted
    accepted_any = any(
        node.kind == "verify" and bool((node.data or {}).get("accepted")) for node in result.graph.nodes()
    )
    update: dict[str, Any] = {
        "correct": correct,
        "pass_at_k": correct or accepted_any,
        "verdict": "passed" if correct else "failed",
    }
    return record.model_copy(update=update)
