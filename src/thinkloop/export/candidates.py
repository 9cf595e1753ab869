"""Read traces strictly and list every complete reply a run produced, with its verdict and provenance.

Why strictly: an export is training data, and a half-read trace could turn a reply whose check never ran (or a
reply cut off mid-answer) into a "good" example. So a line that is not a trace event, or a run with no
``run_finished`` (still running, or killed), makes the whole trace unreadable: it is refused, never guessed at.

Why a reply counts only when it is whole: a node that failed (an error, a refused budget), was cancelled, or
whose reply ended for any reason but ``stop`` (cut off by the token limit, a cut stream, a tool call) is kept
as a :class:`Reply` with ``usable=False`` and a ``why``, so it can be counted, but it is never exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkloop.exceptions import ThinkloopError
from thinkloop.runtime.graph import Node
from thinkloop.runtime.trace import NodeEvent, RunFinished, RunStarted, parse_event
from thinkloop.types import Choice, Message

ANSWER_KINDS = frozenset({"generate", "revise", "answer"})
"""Node kinds whose reply is an attempt at the question. Critiques, judges' evaluations and tree thoughts
(``expand``: partial steps) are the loop's own working, not answers to train on."""


class ExportError(ThinkloopError):
    """A trace or results file the export cannot read fully, or an output that fails its format's schema."""


@dataclass(frozen=True)
class Verdict:
    """What the run's verifier said of one reply (``accepted is None``: no check ran on it)."""

    accepted: bool | None = None
    score: float | None = None
    feedback: str | None = None


@dataclass(frozen=True)
class Reply:
    """One reply of one run, with everything an exported record needs and where it came from."""

    trace: str
    run_id: str
    node_id: int
    question: str
    strategy: str
    model: str
    messages: tuple[Message, ...]
    """The messages the model was sent for this reply (system prompt, earlier rounds and feedback included)."""
    text: str
    answer: str | None
    reasoning: str | None
    finish_reason: str | None
    status: str
    verdict: Verdict
    usable: bool
    why: str | None = None
    """Why an unusable reply cannot be exported: ``cut off``, ``failed``, ``cancelled``, ``pruned``..."""
    gold: str | None = None
    correct: bool | None = None
    """Whether :attr:`answer` matches :attr:`gold` (``None``: no gold known for this run)."""
    problem: str | None = None
    """The bench problem id, where a results file named this trace."""

    def provenance(self) -> dict[str, Any]:
        """Where the reply came from, for the record's provenance line."""
        return {
            "trace": self.trace,
            "run_id": self.run_id,
            "node_id": self.node_id,
            "strategy": self.strategy,
            "model": self.model,
            "question": self.question,
            "answer": self.answer,
            "problem": self.problem,
            "verdict": {
                "accepted": self.verdict.accepted,
                "score": self.verdict.score,
                "feedback": self.verdict.feedback,
            },
            "gold": self.gold,
            "correct": self.correct,
        }


@dataclass
class _Run:
    started: RunStarted | None = None
    finished: RunFinished | None = None
    nodes: dict[int, Node] = field(default_factory=dict)


def trace_files(paths: Iterable[str | Path]) -> list[Path]:
    """The trace files named: files as given, directories searched for ``*.jsonl`` (``bench run --traces``)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.jsonl") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ExportError(f"{path}: no such trace file or directory")
    if not found:
        raise ExportError(f"no trace files (*.jsonl) under {', '.join(str(p) for p in paths)}")
    return found


def read_runs(path: Path) -> list[_Run]:
    """Every run in one trace file, each with its latest node versions; refuse anything not read whole."""
    runs: dict[str, _Run] = {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if data and not data.endswith(b"\n"):
        raise ExportError(f"{path}: the last line is incomplete (a run still writing, or killed mid-write)")
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            event = parse_event(line.decode("utf-8"))
        except ValueError as exc:
            raise ExportError(f"{path}:{number}: not a trace event: {_first_line(exc)}") from exc
        run = runs.setdefault(event.run_id, _Run())
        if isinstance(event, RunStarted):
            run.started = event
        elif isinstance(event, RunFinished):
            run.finished = event
        elif isinstance(event, NodeEvent):
            run.nodes[event.node.id] = event.node
    if not runs:
        raise ExportError(f"{path}: holds no runs")
    for run_id, run in runs.items():
        if run.started is None:
            raise ExportError(f"{path}: run {run_id} has no run_started event")
        if run.finished is None:
            raise ExportError(f"{path}: run {run_id} has no run_finished event (still running, or killed)")
    return list(runs.values())


def replies(path: Path) -> Iterator[Reply]:
    """Every reply to the question in a trace file, usable or not, in node order."""
    for run in read_runs(path):
        yield from _replies(str(path), run)


def _replies(trace: str, run: _Run) -> Iterator[Reply]:
    assert run.started is not None
    verdicts = _verdicts(run.nodes.values())
    for node in sorted(run.nodes.values(), key=lambda n: n.id):
        if node.kind not in ANSWER_KINDS:
            continue
        found = _reply_of(node, run.nodes)
        if found is None:  # the call node of an n-request: its choices are nodes of their own
            continue
        messages, choice = found
        why = _unusable(node, choice)
        yield Reply(
            trace=trace,
            run_id=run.started.run_id,
            node_id=node.id,
            question=run.started.question,
            strategy=run.started.strategy,
            model=run.started.model,
            messages=messages,
            text=choice.text if choice is not None else (node.text or ""),
            answer=node.answer,
            reasoning=choice.reasoning if choice is not None else None,
            finish_reason=choice.finish_reason if choice is not None else None,
            status=node.status,
            verdict=verdicts.get(node.id, Verdict()),
            usable=why is None,
            why=why,
        )


def _reply_of(node: Node, nodes: dict[int, Node]) -> tuple[tuple[Message, ...], Choice | None] | None:
    """The messages sent and the choice received for an answer node, or ``None`` for an n-request's call node.

    A one-choice call carries both itself; each choice of an ``n`` request is a node of its own under the call
    node, which holds the request and the whole completion.
    """
    if node.request is not None:
        if node.completion is not None and len(node.completion.choices) > 1:
            return None
        choice = node.completion.choices[0] if node.completion is not None else None
        return node.request.messages, choice
    data = node.data or {}
    parent = nodes.get(node.parents[0]) if len(node.parents) == 1 else None
    if "choice" not in data or parent is None or parent.request is None:
        return None
    index = data["choice"]
    if parent.completion is not None and isinstance(index, int) and 0 <= index < len(parent.completion.choices):
        return parent.request.messages, parent.completion.choices[index]
    return parent.request.messages, Choice(text=node.text or "", finish_reason=data.get("finish_reason"))


def _unusable(node: Node, choice: Choice | None) -> str | None:
    """Why a reply cannot be exported, in a few words that group (``None``: it can)."""
    if node.status != "done":
        return node.status  # failed (an error, a refused budget), cancelled, pruned, or never finished
    if choice is None:
        return "no reply recorded"
    if choice.tool_calls:
        return "tool call"
    if choice.finish_reason != "stop":
        return "cut off"  # the token limit, a cut stream: the reply may end mid-answer
    if not choice.text.strip():
        return "empty reply"
    return None


def _verdicts(nodes: Iterable[Node]) -> dict[int, Verdict]:
    """Each checked node's verdict, from the ``verify`` nodes under it (the last check of a node wins)."""
    found: dict[int, Verdict] = {}
    for node in sorted(nodes, key=lambda n: n.id):
        if node.kind != "verify" or node.status != "done" or not node.parents:
            continue
        data = node.data or {}
        accepted = data.get("accepted")
        if not isinstance(accepted, bool):
            continue
        found[node.parents[0]] = Verdict(accepted=accepted, score=node.score, feedback=data.get("feedback"))
    return found


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def gold_by_trace(results: Path) -> dict[Path, tuple[str, str]]:
    """``bench run`` results: each record's trace (resolved) to its (gold answer, problem id)."""
    found: dict[Path, tuple[str, str]] = {}
    try:
        lines = results.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise ExportError(f"{results}: cannot read: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ExportError(f"{results}:{number}: not a results record: {_first_line(exc)}") from exc
        if not isinstance(record, dict) or "gold" not in record:
            raise ExportError(f"{results}:{number}: not a bench results record (no gold)")
        if record.get("trace"):
            value = (str(record["gold"]), str(record.get("id")))
            trace = Path(record["trace"])
            # bench wrote the path as given on its command line: relative to where it ran, which is usually
            # where the export runs too, else beside the results file
            for candidate in (trace, results.parent / trace):
                found.setdefault(candidate.resolve(), value)
    return found
