"""Running a planned request and shaping its result as a chat completion, like o1's but open.

- ``content`` is the chosen candidate's text: the reply the model wrote for the answer the strategy picked
  (a client of o1 gets the final reply text too); the extracted answer is in ``thinkloop.answer``.
- ``reasoning_content`` is the run's account (:mod:`thinkloop.serve.account`).
- ``usage`` sums every upstream call; ``completion_tokens_details.reasoning_tokens`` are the completion tokens
  not in the returned content (the other samples, critiques, judges, and any hidden thinking of the upstream).
  The returned content's tokens are the chosen call's completion tokens, or, for one choice of an ``n``
  request, that call's completion tokens shared out by the choices' lengths.
- ``finish_reason`` is ``length`` when the budget (or the deadline) stopped the run, or the chosen reply was
  cut off by ``max_tokens``; ``tool_calls`` when the model called tools; otherwise ``stop``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from thinkloop.runtime.engine import Engine
from thinkloop.runtime.graph import Node
from thinkloop.runtime.result import Candidate, Result
from thinkloop.serve.account import ReasoningAccount
from thinkloop.serve.errors import ApiError
from thinkloop.serve.plan import Plan
from thinkloop.serve.traces import TraceStore
from thinkloop.serve.upstream import CURRENT_NOTES, CallNotes, upstream_refusal
from thinkloop.types import Choice, RunUsage

log = logging.getLogger("thinkloop.serve")


@dataclass
class RunReply:
    """One finished run and what the response needs from it."""

    index: int
    result: Result
    account: ReasoningAccount
    fallback: Candidate | None = None
    """The reply shown when the run found no answer though every call succeeded (an answerless vote)."""
    warnings: tuple[str, ...] = ()
    allowance_spent: bool = False
    """``max_completion_tokens`` stopped the run."""

    @property
    def chosen(self) -> Candidate | None:
        return self.result.candidate if self.result.candidate is not None else self.fallback

    @property
    def content(self) -> str:
        chosen = self.chosen
        return chosen.text if chosen is not None else (self.result.text or "")

    def origin(self) -> Node | None:
        """The node that produced the chosen text: through votes and selections to the model call."""
        candidate = self.chosen
        if candidate is None or candidate.node_id is None:
            return None
        graph = self.result.graph
        node = graph.node(candidate.node_id)
        while node.completion is None and not (node.data and "choice" in node.data) and node.parents:
            node = graph.node(node.parents[0])
        return node

    def answer_tokens(self) -> int:
        node = self.origin()
        if node is None:
            return 0
        if node.completion is not None:
            usage = node.usage
            if usage is None or usage.completion_tokens is None:
                return 0
            return usage.completion_tokens - (usage.reasoning_tokens or 0)
        parent = self.result.graph.node(node.parents[0])
        if parent.completion is None or parent.usage is None or parent.usage.completion_tokens is None:
            return 0
        lengths = [len(c.text) for c in parent.completion.choices]
        share = len(node.text or "") / sum(lengths) if sum(lengths) else 1 / len(lengths)
        return round(parent.usage.completion_tokens * share)

    def _choice(self) -> Choice | None:
        """The upstream choice the content came from (its tool calls, its logprobs)."""
        node = self.origin()
        if node is None:
            return None
        if node.completion is not None:
            return node.completion.choices[0]
        index = (node.data or {}).get("choice")
        parent = self.result.graph.node(node.parents[0]) if node.parents else None
        if (
            parent is not None
            and parent.completion is not None
            and isinstance(index, int)
            and index < len(parent.completion.choices)
        ):
            return parent.completion.choices[index]
        return None

    def tool_calls(self) -> list[dict[str, Any]] | None:
        node = self.origin()
        if node is None or node.completion is None:
            return None
        calls = node.completion.choices[0].tool_calls
        return list(calls) if calls else None

    def logprobs(self) -> dict[str, Any] | None:
        """The chosen reply's token logprobs in OpenAI's shape (when the client asked for them through direct)."""
        choice = self._choice()
        if choice is None or not choice.logprobs:
            return None
        return {
            "content": [
                {"token": t.token, "logprob": t.logprob, "bytes": list(t.token.encode()), "top_logprobs": []}
                for t in choice.logprobs
            ],
            "refusal": None,
        }

    def finish_reason(self) -> str:
        result = self.result
        if result.stop_reason in ("budget", "deadline") or self.allowance_spent:
            return "length"
        if self.tool_calls():
            return "tool_calls"
        chosen = self.chosen
        if chosen is not None and chosen.finish_reason == "length":
            return "length"
        return "stop"

    def message(self) -> dict[str, Any]:
        tool_calls = self.tool_calls()
        content: str | None = self.content
        if tool_calls and not content:
            content = None  # as OpenAI sends a reply that only calls tools
        message: dict[str, Any] = {"role": "assistant", "content": content, "reasoning_content": self.account.text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return message

    def info(self, plan: Plan) -> dict[str, Any]:
        result = self.result
        stop = "budget" if self.allowance_spent and result.stop_reason in ("error", "completed") else result.stop_reason
        chosen = self.chosen
        return {
            "run_id": result.run_id,
            "strategy": result.strategy,
            "spec": plan.spec,
            "selected_by": plan.selected_by,
            "answer": result.answer if result.candidate is not None else (chosen.answer if chosen else None),
            "stop_reason": stop,
            "stop_detail": result.stop_detail,
            "verdict": result.verdict,
            "feedback": result.feedback,
            "calls": result.usage.calls,
            "failed_calls": result.usage.failed_calls,
            "cost": result.cost,
            "latency_s": round(result.latency_s, 3),
            "budget": plan.budget.model_dump(mode="json", exclude_none=True, exclude={"price", "prices"}),
            "trace": f"/v1/traces/{result.run_id}",
            "notes": list(result.notes),
            "ignored": list(plan.ignored),
            "changed": dict(plan.changed),
            "warnings": [*result.warnings, *self.warnings],
        }


def usage_json(replies: list[RunReply]) -> dict[str, Any]:
    """The OpenAI usage object summed over every run and every upstream call."""
    total = sum((r.result.usage for r in replies), RunUsage())
    answer = sum(r.answer_tokens() for r in replies)
    return {
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.completion_tokens,
        "total_tokens": total.total_tokens,
        "prompt_tokens_details": {"cached_tokens": total.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": max(0, total.completion_tokens - answer)},
    }


def thinkloop_json(replies: list[RunReply], plan: Plan) -> dict[str, Any]:
    info = replies[0].info(plan)
    if len(replies) > 1:
        info["runs"] = [r.info(plan) for r in replies]
    return info


async def run_one(
    plan: Plan,
    engine: Engine,
    traces: TraceStore,
    *,
    index: int = 0,
    on_text: Callable[[str], None] | None = None,
) -> RunReply:
    """One run of the plan. Raises :class:`ApiError` for a run that failed without any answer."""
    run_id = uuid.uuid4().hex[:12]
    account = ReasoningAccount(on_text, show_replies=plan.strategy.name not in SINGLE_CALL)
    notes = CallNotes(completion_left=plan.completion_allowance)
    CURRENT_NOTES.set(notes)  # this task's context: the run's tasks inherit it
    started = time.perf_counter()
    try:
        result = await engine.run(
            plan.strategy,
            plan.conversation,
            budget=plan.budget,
            sinks=(account, traces.sink(run_id)),
            run_id=run_id,
        )
    except anyio.get_cancelled_exc_class():
        # The client went away or the server is stopping: the calls it made are billed all the same.
        log.warning(
            "run %s cancelled after %.1f s: %d upstream calls sent, %d tokens billed so far (calls still in "
            "flight may be billed too)",
            run_id,
            time.perf_counter() - started,
            notes.calls,
            account.billed_tokens,
        )
        raise
    finally:
        traces.finished(run_id)
    log.info(
        "run %s %s: stop %s, %d calls, %d tokens, %.2f s",
        run_id,
        result.strategy,
        result.stop_reason,
        result.usage.calls,
        result.usage.total_tokens,
        result.latency_s,
    )
    fallback, warnings = None, []
    if result.candidate is None and result.stop_reason not in ("budget", "deadline") and not notes.allowance_spent:
        refusal = upstream_refusal(result.failures)
        if refusal is not None and refusal.status == 429:
            raise ApiError(
                429,
                f"the upstream model is rate limited: {result.error}",
                code="upstream_rate_limited",
                retry_after=refusal.retry_after or 1,
            )
        if refusal is not None:
            raise ApiError(
                refusal.status,
                f"the upstream model refused the request: {result.error}",
                code="upstream_invalid_request",
            )
        fallback = next((c for c in result.attempts if c.text.strip()), None)
        if fallback is None or result.error:
            raise ApiError(
                502, f"the upstream model failed: {result.error or 'no answer was produced'}", code="upstream_error"
            )
        warnings.append("no reply had an answer the strategy could read; 'content' is the first reply in full")
    if notes.allowance_spent:
        warnings.append("max_completion_tokens (every completion token of the reply) stopped the run")
    account.flush()
    return RunReply(
        index=index,
        result=result,
        account=account,
        fallback=fallback,
        warnings=tuple(warnings),
        allowance_spent=notes.allowance_spent,
    )


SINGLE_CALL = frozenset({"direct", "cot"})
"""Strategies whose one reply is the content: the account names it rather than repeating it."""
