"""Trace events → the plain JSON document the viewer page draws.

The page's script does the layout and drawing; this module does the bookkeeping that needs the whole trace:
each node's latest version, when each call started and ended (from the events' ``ts``, or their order in
older traces), the path to the answer, and the run's totals and budget. Nodes keep the trace's own field
names, so the page and the JSONL read alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from thinkloop.runtime.budget import Budget, Price
from thinkloop.runtime.failure import failure_of
from thinkloop.runtime.graph import Node
from thinkloop.runtime.runs import RecordedRun, group_runs
from thinkloop.runtime.trace import RunFinished

LIMITS = ("tokens", "calls", "seconds", "dollars")


class _Texts:
    """Message contents stored once: every call of a run repeats its system prompt and the question."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.texts: list[str] = []

    def __call__(self, text: str) -> int:
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.texts)
            self.texts.append(text)
        return found


def build_document(events: Iterable[Any], run_id: str | None = None) -> dict[str, Any]:
    """The page's data: ``{"runs": [...], "texts": [...]}``, every run of the trace or only ``run_id``.

    A request's messages are ``[role, index into texts]`` pairs.

    Raises:
        ValueError: ``run_id`` is not in the trace.
    """
    events = list(events)
    timed = any(event.ts is not None for event in events)
    runs = group_runs(events)
    if run_id is not None:
        runs = [run for run in runs if run.run_id == run_id]
        if not runs:
            raise ValueError(f"run {run_id!r} is not in the trace")
    texts = _Texts()
    documents = [_run_document(run, timed, texts) for run in runs]
    return {"clock": "wall" if timed else "order", "runs": documents, "texts": texts.texts}


def _run_document(run: RecordedRun, timed: bool, texts: _Texts) -> dict[str, Any]:
    started, finished = run.started, run.finished
    origin = run.first or 0.0
    budget = dict(started.budget) if started is not None else {}
    model = started.model if started is not None else None
    nodes = [_node_document(node, run, origin, texts) for _, node in sorted(run.nodes.items())]
    answer_node = finished.answer_node if finished is not None else None
    return {
        "id": run.run_id,
        "question": started.question if started is not None else None,
        "strategy": started.strategy if started is not None else None,
        "model": model,
        "stop_reason": finished.stop_reason if finished is not None else "running",
        "answer": finished.answer if finished is not None else None,
        "answer_node": answer_node,
        "error": finished.error if finished is not None else None,
        "verdict": finished.verdict if finished is not None else None,
        "feedback": finished.feedback if finished is not None else None,
        "warnings": list(finished.warnings) if finished is not None else [],
        "stop_detail": finished.stop_detail if finished is not None else None,
        "started_at": run.first if timed else None,
        "seconds": (run.last - origin) if timed and run.last is not None and finished is not None else None,
        "path": _path(run.nodes, answer_node),
        "totals": _totals(run.nodes.values(), budget, model, finished),
        "limits": {name: budget[name] for name in LIMITS if budget.get(name) is not None},
        "nodes": nodes,
    }


def _node_document(node: Node, run: RecordedRun, origin: float, texts: _Texts) -> dict[str, Any]:
    document = node.model_dump(mode="json", exclude_none=True, exclude={"request", "completion", "usage"})
    if node.request is not None:
        document["request"] = node.request.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        document["request"]["messages"] = [[m.role, texts(m.content)] for m in node.request.messages]
    completion = node.completion
    if completion is not None:
        document["choices"] = [
            {"text": c.text, "finish_reason": c.finish_reason} | ({"reasoning": c.reasoning} if c.reasoning else {})
            for c in completion.choices
        ]
        if completion.model is not None:
            document["model"] = completion.model
        if len(completion.choices) == 1 and node.text == completion.choices[0].text:
            document.pop("text", None)  # shown once, as the completion
    if node.usage is not None:
        document["usage"] = node.usage.model_dump(mode="json", exclude_defaults=True)  # the estimate flag when set
    document["t0"] = run.start[node.id] - origin
    document["t1"] = run.end.get(node.id, run.last or run.start[node.id]) - origin
    return document


def _path(nodes: dict[int, Node], answer_node: int | None) -> list[int]:
    """First parents from the answer's node up to the root (as ``ReasoningGraph.path_to``), root first."""
    path: list[int] = []
    seen: set[int] = set()
    current = answer_node
    while current is not None and current in nodes and current not in seen:
        path.append(current)
        seen.add(current)
        parents = nodes[current].parents
        current = parents[0] if parents else None
    return path[::-1]


def _price_for(budget: dict[str, Any], model: str | None) -> tuple[Price | None, dict[str, Price]]:
    try:
        parsed = Budget.model_validate({k: v for k, v in budget.items() if k in {"price", "prices"}})
    except ValidationError:
        return None, {}
    return parsed.price, dict(parsed.prices or {})


def _totals(
    nodes: Iterable[Node], budget: dict[str, Any], model: str | None, finished: RunFinished | None
) -> dict[str, Any]:
    """What the run was billed: the engine's own sums where the trace has them (``RunFinished.usage`` and
    ``cost``), else summed from its call nodes (a request refused by the budget was never sent)."""
    price, prices = _price_for(budget, model)
    totals: dict[str, Any] = {
        "calls": 0,
        "failed_calls": 0,
        "calls_without_usage": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "reasoning_tokens": 0,
        "cached_prompt_tokens": 0,
        "dollars": None,
    }
    for node in nodes:
        if node.request is None or ((failure := failure_of(node)) is not None and failure.is_budget):
            continue
        totals["calls"] += 1
        if node.status == "failed":
            totals["failed_calls"] += 1
            continue
        usage = node.usage
        if usage is None or not usage.known:
            totals["calls_without_usage"] += node.status != "running"
            continue
        completion = usage.completion_tokens or 0
        prompt = usage.prompt_tokens or 0
        totals["prompt_tokens"] += prompt
        totals["completion_tokens"] += completion
        totals["reasoning_tokens"] += min(usage.reasoning_tokens or 0, completion)
        totals["cached_prompt_tokens"] += min(usage.cached_prompt_tokens or 0, prompt)
        called = node.completion.model if node.completion is not None else None
        node_price = prices.get(called or "") or prices.get(model or "") or price
        cost = node_price.cost(usage) if node_price is not None else None
        if cost is not None:
            totals["dollars"] = (totals["dollars"] or 0.0) + cost
    if finished is not None and finished.usage is not None:
        totals |= {key: value for key, value in finished.usage.items() if key in totals}
        totals["dollars"] = finished.cost
    totals["tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
    return totals
