"""The readable account of a run (``message.reasoning_content``), built from its trace events as they happen.

Open reasoning servers (llama.cpp, SGLang, DeepSeek) return a model's thinking as ``reasoning_content``.
Here the "thinking" is what the strategy did: each sample with its answer, the vote, critiques and verdicts,
scores, pruned branches and backtracks. :class:`ReasoningAccount` is a trace sink: each step becomes one
paragraph the moment it finishes, handed to ``on_text`` (the stream) and kept for the whole text (the
non-streaming reply). The opening line, failures and the closing line are held back until a step succeeds
(or :meth:`ReasoningAccount.flush`), so a run that fails before doing anything can still be answered with an
HTTP error (an upstream 429 as a 429) rather than a half-sent stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thinkloop.runtime.failure import failure_of
from thinkloop.runtime.graph import Node
from thinkloop.runtime.trace import NodeEvent, RunFinished, RunStarted

_LABELS = {
    "generate": "Sample",
    "expand": "Step",
    "revise": "Revision",
    "critique": "Critique",
    "evaluate": "Evaluation",
    "answer": "Answer",
}


class ReasoningAccount:
    """A trace sink that writes a run's steps as readable paragraphs."""

    def __init__(self, on_text: Callable[[str], None] | None = None, *, show_replies: bool = True) -> None:
        self.on_text = on_text
        self.show_replies = show_replies
        """False for a one-call strategy: its reply is the content, so the account does not repeat it."""
        self.parts: list[str] = []
        self._pending = ""
        self._counts: dict[str, int] = {}
        self._numbers: dict[int, int] = {}
        self._reported: set[tuple[int, str]] = set()
        self.billed_tokens = 0
        """Tokens of the calls finished so far (logged when a run is cancelled)."""

    @property
    def text(self) -> str:
        return "".join(self.parts) + self._pending

    def __call__(self, event: Any) -> None:
        if isinstance(event, NodeEvent):
            paragraph = self._node(event.node)
            if paragraph and event.node.status in ("failed", "cancelled"):
                self._pending += paragraph
            elif paragraph:
                self._emit(paragraph)
        elif isinstance(event, RunStarted):
            budget = ", ".join(
                f"{k} {v}" for k, v in event.budget.items() if k in ("tokens", "calls", "seconds", "dollars")
            )
            self._pending += f"Strategy {event.strategy} on {event.model}" + (f", budget: {budget}" if budget else "")
            self._pending += ".\n\n"
        elif isinstance(event, RunFinished):
            line = f"Stopped: {event.stop_reason}"
            if event.stop_detail:
                line += f" ({event.stop_detail})"
            if event.answer is not None:
                line += f"; answer {event.answer}"
            if event.verdict in ("passed", "failed"):
                line += f"; check {event.verdict}"
            if event.error:
                line += f" ({event.error})"
            self._pending += line + ".\n" + "".join(f"Warning: {w}\n" for w in event.warnings)

    def flush(self) -> None:
        """Hand over what is held back (the run is over and has an answer to send)."""
        if self._pending:
            self._emit("")

    def _emit(self, paragraph: str) -> None:
        text = self._pending + paragraph
        self._pending = ""
        self.parts.append(text)
        if self.on_text is not None:
            self.on_text(text)

    def _number(self, node: Node) -> int:
        number = self._numbers.get(node.id)
        if number is None:
            number = self._counts[node.kind] = self._counts.get(node.kind, 0) + 1
            self._numbers[node.id] = number
        return number

    def _node(self, node: Node) -> str | None:
        status = node.status
        if status == "running" or node.kind == "question" or (node.id, status) in self._reported:
            return None
        self._reported.add((node.id, status))
        if status == "done" and node.usage is not None:
            self.billed_tokens += node.usage.total_tokens or 0
        kind = node.kind
        data = node.data or {}
        if status == "failed":
            failure = failure_of(node)
            if failure is not None and failure.is_budget:
                return f"The budget refused a further call ({failure.resource}): {node.error}\n\n"
            return f"A {kind} call failed: {node.error}\n\n"
        if status == "cancelled":
            return f"A {kind} call was cancelled.\n\n"
        if status == "pruned":
            reason = data.get("reason") or data.get("pruned")
            return f"Pruned step {self._numbers.get(node.id, node.id)}" + (f": {reason}" if reason else "") + ".\n\n"
        if kind == "vote":
            votes = data.get("votes") or {}
            tally = ", ".join(f"{answer} ×{count}" for answer, count in votes.items()) or "no answers"
            line = f"Vote over {data.get('samples', '?')} of {data.get('requested', '?')} samples: {tally}"
            if data.get("unanswered"):
                line += f"; {data['unanswered']} without an answer"
            return line + (f" → {node.answer}" if node.answer is not None else " → no answer") + ".\n\n"
        if kind == "verify":
            verdict = "accepted" if data.get("accepted") else "rejected"
            line = f"Verifier on answer {node.answer}: {verdict}"
            if node.score is not None:
                line += f" (score {node.score:.2f})"
            if data.get("feedback"):
                line += f". {data['feedback']}"
            return line + ".\n\n"
        if kind == "select":
            line = f"Selected answer {node.answer}"
            if node.score is not None:
                line += f" (score {node.score:.2f})"
            return line + ".\n\n"
        if kind == "decide":
            return f"Decided to {data.get('decision', 'go on')}: {node.text or data.get('reason', '')}.\n\n"
        if kind == "backtrack":
            return f"Backtracked from step {', '.join(str(self._numbers.get(p, p)) for p in node.parents)}.\n\n"
        if kind == "evaluate" and node.text is None:
            return f"Scored answer {node.answer}: {node.score}.\n\n" if node.score is not None else None
        if node.text is None:
            completion = node.completion
            if completion is not None and len(completion.choices) > 1:
                return f"Drew {len(completion.choices)} samples in one call.\n\n"
            return None
        if kind == "evaluate" and node.parents and node.parents[0] in self._numbers:
            label = f"Evaluation of step {self._numbers[node.parents[0]]}"
        else:
            label = f"{_LABELS.get(kind, kind.capitalize())} {self._number(node)}"
            if kind == "expand" or node.strategy == "tree":
                label += f" (depth {node.depth})"
        head = label + (f" → {node.answer}" if node.answer is not None and kind != "critique" else "")
        if node.score is not None:
            head += f" (score {node.score:.2f})"
        thinking = _thinking(node)
        if not self.show_replies and kind == "generate":
            body = f"Thinking:\n{thinking}\n\n" if thinking else ""
            return f"{head} (the reply is the content).\n\n{body}"
        shown = f"Thinking:\n{thinking}\n\nReply:\n" if thinking else ""
        return f"{head}:\n{shown}{node.text.strip()}\n\n"


def _thinking(node: Node) -> str | None:
    """An upstream reasoning model's own thinking on a one-choice call (``reasoning_content`` of its reply)."""
    completion = node.completion
    if completion is None or len(completion.choices) != 1:
        return None
    reasoning = completion.choices[0].reasoning
    return reasoning.strip() or None if reasoning else None
