"""What a result means for whoever reads it: the check's verdict, the warnings, why the run stopped.

Computed once here, from the result itself, so the command line, ``serve``, ``bench``, the viewer and
OpenTelemetry all say the same thing: a failed check never looks like success, a cut-off reply or a tied
vote is never hidden, and the stop reason comes with one line a person can read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thinkloop.runtime.failure import failure_of

if TYPE_CHECKING:
    from thinkloop.runtime.result import CheckVerdict, Result

NO_MAJORITY = "votes spread"


def verdict_of(result: Result, checked: bool) -> tuple[CheckVerdict, str | None]:
    """``passed``/``failed``/``unchecked`` and the verifier's last feedback on the answer.

    ``checked``: the run had a verifier. Its verdict is the chosen candidate's (the engine checks a candidate
    no strategy checked); a run with a verifier and nothing to check failed it.
    """
    candidate = result.candidate
    if not checked:
        return "unchecked", None
    if candidate is None:
        return "failed", _last_feedback(result)
    if candidate.accepted is None:
        return "unchecked", None
    feedback = " ".join(candidate.feedback.split()) if candidate.feedback else None
    return ("passed" if candidate.accepted else "failed"), feedback


def _last_feedback(result: Result) -> str | None:
    for node in reversed(list(result.graph.nodes())):
        if node.kind == "verify" and node.data and node.data.get("feedback"):
            return " ".join(str(node.data["feedback"]).split())
    return None


def warnings_of(result: Result, checked: bool) -> list[str]:
    """What a reader must know before trusting the answer, one line each, most important first."""
    found: list[str] = []
    if checked and result.verdict == "failed":
        tried = sum(a.accepted is False for a in result.attempts) or None
        what = f"none of {tried} checked attempts passed" if tried and tried > 1 else "the answer did not pass"
        found.append(f"check failed: {what}" + (f" ({_short(result.feedback)})" if result.feedback else ""))
    elif checked and result.verdict == "unchecked" and result.candidate is not None:
        found.append("the answer was not checked (the run stopped before its verifier could run)")
    found.extend(_cut_off(result))
    found.extend(_vote_warnings(result))
    pruned = pruned_on_path(result)
    if pruned is not None:
        found.append(f"the answer comes from a pruned branch ({pruned})")
    return found


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cut_off(result: Result) -> list[str]:
    attempts = result.attempts
    kind = "samples" if result.votes is not None else "attempts"
    cut = sum(a.finish_reason == "length" for a in attempts)
    if cut and (result.votes is not None or len(attempts) > 1):
        return [f"{cut} of {len(attempts)} {kind} cut off by their token limit"]
    if cut or (result.candidate is not None and result.candidate.finish_reason == "length"):
        max_tokens = _max_tokens_of(result)
        return ["the reply was cut off" + (f" at max_tokens={max_tokens}" if max_tokens is not None else "")]
    return []


def _vote_warnings(result: Result) -> list[str]:
    split = [(str(a), int(c)) for a, c in (result.votes or {}).items()]
    found = []
    if len(split) > 1 and split[0][1] == split[1][1]:
        tied = [answer for answer, count in split if count == split[0][1]]
        found.append(f"tied vote: {', '.join(tied)} with {split[0][1]} each; {split[0][0]} won the tie-break")
    elif split and not has_majority(result):
        found.append(f"{NO_MAJORITY}: {vote_summary(result)}")
    unanswered = sum(a.answer is None for a in result.attempts)
    if result.votes is not None and unanswered and result.answer is not None:
        found.append(f"{unanswered} of {len(result.attempts)} samples gave no answer")
    return found


def has_majority(result: Result | Any) -> bool:
    """Whether the vote's winner holds more than half of the samples drawn (no vote: ``True``)."""
    votes = result.votes or {}
    if not votes:
        return True
    top = max(votes.values())
    drawn = max(len(result.attempts), sum(votes.values()))
    return top * 2 > drawn


def vote_summary(result: Result | Any) -> str:
    """``42 has 5 of 30 samples (12 answers; 8 gave none)``."""
    votes = result.votes or {}
    if not votes:
        return "no votes"
    leader, top = next(iter(votes.items()))
    drawn = max(len(result.attempts), sum(votes.values()))
    unanswered = drawn - sum(votes.values())
    more = f"{len(votes)} answer" + ("" if len(votes) == 1 else "s")
    more += f"; {unanswered} gave none" if unanswered else ""
    return f"{leader} has {top} of {drawn} samples ({more})"


def pruned_on_path(result: Result) -> str | None:
    """The first pruned node on the path to the answer, described (``node 4: value 0.00 < 0.3``), or ``None``."""
    for node in result.answer_path():
        if getattr(node, "status", None) == "pruned":
            reason = (node.data or {}).get("pruned") if isinstance(node.data, dict) else None
            return f"node {node.id}" + (f": {reason}" if reason else "")
    return None


def _max_tokens_of(result: Result) -> int | None:
    """The completion limit of the call that produced the answer (after any clamp to the budget left)."""
    for node in reversed(result.answer_path()):
        request = getattr(node, "request", None)
        if request is not None and request.max_tokens is not None:
            return int(request.max_tokens)
    return None


_ROUTINE = ("the strategy ran its course (", "the check accepted the answer")


def routine_stop(result: Result) -> bool:
    """Whether the stop detail only restates the stop reason (one call that completed, an accepted check):
    a one-line account leaves it out."""
    return result.stop_detail.startswith(_ROUTINE) and result.verdict != "failed" and result.candidate is not None


def stop_detail(result: Result, given: str | None, *, budget: dict[str, Any] | None = None) -> str:
    """One line saying why the run stopped: the strategy's own words where it gave them, else the stop
    reason's, with the figures that explain it."""
    stop = result.stop_reason
    if given and stop not in ("budget", "deadline", "error", "cancelled"):
        return given
    calls = result.usage.calls
    made = f"{calls} call" + ("" if calls == 1 else "s")
    match stop:
        case "accepted":
            return "the check accepted the answer" + (f" after {made}" if calls else "")
        case "converged":
            return (
                f"the vote was decided: {vote_summary(result)}"
                if result.votes
                else "nothing more to gain (the critic found nothing to fix)"
            )
        case "max_rounds":
            return (
                f"the round limit was reached after {made} with no accepted answer"
                if result.verdict == "failed"
                else f"the round or depth limit was reached after {made}"
            )
        case "budget":
            return _budget_line(result, budget or {}, made)
        case "deadline":
            seconds = (budget or {}).get("seconds")
            return (
                f"the time limit ({seconds:g} s) ran out after {made}"
                if seconds
                else f"the time limit ran out after {made}"
            )
        case "error":
            return f"failed: {result.error}" if result.error else "every attempt failed"
        case "cancelled":
            return "cancelled by the caller"
    if result.candidate is None:
        return f"the strategy ran its course ({made}) and found no answer"
    if result.verdict == "failed":
        return f"the strategy ran its course ({made}); no answer passed the check"
    return f"the strategy ran its course ({made})"


def _budget_line(result: Result, budget: dict[str, Any], made: str) -> str:
    spent = result.spent
    parts = []
    for name in ("tokens", "calls", "dollars"):
        limit = budget.get(name)
        if limit is not None:
            used = spent.get(name, 0)
            parts.append(f"{name} {used:g} of {limit:g}")
    limits = f" ({', '.join(parts)})" if parts else ""
    if result.usage.calls == 0 and result.candidate is None:
        refused = next(
            (
                n
                for n in result.graph.nodes()
                if (f := failure_of(n)) is not None and f.is_budget and n.request is not None
            ),
            None,
        )
        reserve = ""
        if refused is not None and refused.request is not None and refused.request.max_tokens is not None:
            reserve = (
                f" (one call reserves its prompt plus {refused.request.max_tokens} completion tokens; "
                "lower max_tokens or raise the token budget)"
            )
        return f"the budget{limits} cannot fit one call{reserve}"
    return f"the budget ran out{limits} after {made}"
