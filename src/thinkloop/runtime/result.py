"""What a run returns: the best candidate found, why the run stopped, and what it cost."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from thinkloop.runtime.failure import Failure, failure_of
from thinkloop.runtime.graph import ReasoningGraph
from thinkloop.types import RunUsage

StopReason = Literal[
    "completed",  # the strategy ran its course (all samples drawn, all rounds done, search exhausted)
    "accepted",  # a verifier accepted a candidate
    "converged",  # nothing more to gain: adaptive vote decided, critique found nothing to fix
    "max_rounds",  # a round/depth limit was reached before acceptance
    "budget",  # tokens, calls or dollars ran out
    "deadline",  # the wall-clock limit ran out
    "cancelled",  # the caller cancelled
    "error",  # every attempt failed for an infrastructure reason (see ``error``)
]

CheckVerdict = Literal[
    "passed",  # the run's verifier accepted the answer
    "failed",  # the run had a verifier and the answer it returns did not pass it
    "unchecked",  # the run had no verifier (or could not run it on the answer: see ``warnings``)
]


class Candidate(BaseModel):
    """A proposed answer: the text, the extracted answer and where it came from in the graph."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    answer: str | None = None
    node_id: int | None = None
    score: float | None = None
    accepted: bool | None = None
    feedback: str | None = None
    finish_reason: str | None = None
    mean_logprob: float | None = None
    data: dict[str, Any] | None = None
    reasoning: str | None = None
    """The model's visible thinking behind ``text`` (an open reasoning model's), never read for the answer."""

    def better_than(self, other: Candidate | None) -> bool:
        """Whether this candidate ranks above ``other`` by :meth:`rank` (anything beats nothing)."""
        if other is None:
            return True
        return self.rank() > other.rank()

    def rank(self) -> tuple[int, int, float]:
        """Sort key, best last: having an answer at all, then accepted, then score."""
        return (int(self.answer is not None), 1 if self.accepted else 0, -1.0 if self.score is None else self.score)


class Outcome(BaseModel):
    """What one strategy (or sub-strategy) produced: its pick and why it stopped."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    candidate: Candidate | None
    stop_reason: StopReason
    notes: tuple[str, ...] = ()
    attempts: tuple[Candidate, ...] = ()
    """Every complete answer the strategy weighed (samples, versions, candidates), in the order it got them.
    Not retries: a call's retried tries are nodes, numbered by ``data["attempt"]``."""
    votes: dict[str, int] | None = None
    """The vote tally (answer to count), where the strategy voted."""
    data: dict[str, Any] | None = None
    """Strategy-specific details (weights, scores, visits): for people reading a result, not for code."""
    detail: str | None = None
    """Why it stopped, in one line a person can read ("every branch was pruned", "no stage was accepted")."""


class Result(BaseModel):
    """The result of one run. ``answer`` is ``None`` only when no candidate was produced; then
    ``stop_reason`` and ``error`` say why."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    run_id: str
    question: str
    strategy: str
    model: str
    answer: str | None
    text: str | None
    candidate: Candidate | None
    stop_reason: StopReason
    usage: RunUsage
    cost: float | None = None
    spent: dict[str, float] = Field(default_factory=dict)
    """What the budget was charged (``tokens``, ``calls``, ``dollars``): a sent call whose usage is unknown
    (timed out, cancelled) counts at its reserved worst case, so this can exceed :attr:`usage`'s tokens."""
    latency_s: float
    error: str | None = None
    failure: Failure | None = None
    """The typed record behind :attr:`error` (its kind, HTTP status, ``retry_after``), where the run failed."""
    verdict: CheckVerdict = "unchecked"
    """Whether the answer passed the run's verifier: the contract every surface reports the same way."""
    feedback: str | None = None
    """The verifier's last word on the answer (why it failed, or what it accepted)."""
    warnings: tuple[str, ...] = ()
    """What a reader must know before trusting the answer (a failed check, a cut-off reply, a tie, a pruned
    branch, a vote with no majority): one line each, the same lines ``ask``, ``serve``, ``bench``, the viewer
    and OpenTelemetry show."""
    stop_detail: str = ""
    """Why the run stopped, in one line (``stop_reason`` is the machine-readable word)."""
    notes: tuple[str, ...] = ()
    attempts: tuple[Candidate, ...] = ()
    """Every complete answer the strategy weighed (samples, versions, candidates); empty for one call. Not
    retries: a call's retried tries are nodes, numbered by ``data["attempt"]``."""
    votes: dict[str, int] | None = None
    """The vote tally (answer to count), where the strategy voted."""
    data: dict[str, Any] | None = None
    trace_path: str | None = None
    graph: ReasoningGraph = Field(exclude=True)

    @property
    def passed(self) -> bool:
        """The run had a verifier and the answer passed it."""
        return self.verdict == "passed"

    @property
    def failures(self) -> list[Failure]:
        """Every failed call of the run, typed, in the order they were recorded (budget refusals included)."""
        return [f for n in self.graph.nodes() if (f := failure_of(n)) is not None]

    @property
    def calls(self) -> int:
        return self.usage.calls

    @property
    def answers(self) -> list[str]:
        """The answers of :attr:`attempts`, in order (attempts without an answer left out)."""
        return [a.answer for a in self.attempts if a.answer is not None]

    def answer_path(self) -> list[Any]:
        """The nodes from the question to the chosen answer."""
        if self.candidate is None or self.candidate.node_id is None:
            return []
        return self.graph.path_to(self.candidate.node_id)

    def to_json_dict(self) -> dict[str, Any]:
        """Everything, the graph included (node-link form)."""
        return self.model_dump(mode="json") | {"graph": self.graph.to_node_link()}
