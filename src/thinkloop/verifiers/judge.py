"""An LLM judge: ask a model whether a candidate is correct, and parse a strict verdict.

The judge's call goes through the run's context (``ctx.call``), so its tokens are charged to the run's budget
and it appears in the trace as a ``verify`` node under the candidate it judged. A reply without a clear verdict
line is a rejection (score 0) that says so: a judge that cannot follow the format is not evidence of
correctness.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.checks import candidate_answer

if TYPE_CHECKING:
    from thinkloop.backends.base import Backend
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

JUDGE_SYSTEM = (
    "You are a strict grader. You check a proposed solution to a problem step by step and decide whether "
    "its final answer is correct."
)
JUDGE_PROMPT = """Problem:
{question}

Proposed solution:
{solution}

Proposed final answer: {answer}

Check the solution step by step. Then end your reply with exactly these two lines:
VERDICT: CORRECT or VERDICT: INCORRECT
SCORE: <your confidence that the final answer is correct, a number from 0 to 1>"""

# Markdown a judge may wrap a line or a word in; sentence punctuation, a parenthetical remark and "\r" may end it.
_VERDICT = re.compile(
    r"^[ \t>*_`]*VERDICT[ \t*_`]*:[ \t*_`]*(CORRECT|INCORRECT)[ \t*_`]*[.!]?[ \t*_`]*(?:\([^\n]*\))?[ \t\r]*$",
    re.I | re.M,
)
_SCORE = re.compile(r"^[ \t>*_`]*SCORE[ \t*_`]*[:=]([^\n]*)$", re.I | re.M)
_SCORE_VALUE = re.compile(r"(?P<number>[^\s*_`]*?)[ \t*_`]*[.;!,]?[ \t*_`]*(?:\([^\n]*\))?")
_NUMBER = re.compile(r"(?:0|1)(?:\.\d+)?|\.\d+")
_MAX_FEEDBACK = 2000


def _score_text(line: str) -> str:
    """The score as written, without markdown, a sentence's final punctuation or a remark in brackets:
    ``" **0.95**. (sure)"`` -> ``"0.95"``; what is not one number stays whole, for the error message."""
    line = line.strip().strip("*_`").strip()
    match = _SCORE_VALUE.fullmatch(line)
    return match.group("number") if match is not None and match.group("number") else line


def parse_verdict(reply: str) -> Verdict:
    """Read a judge's reply: one verdict (several lines must agree) and an optional score in [0, 1].

    Anything else (no verdict line, contradicting verdicts, a score that is not a number in [0, 1]) is a
    rejection with score 0 whose feedback says why.
    """
    verdicts = {match.group(1).upper() for match in _VERDICT.finditer(reply)}
    reasoning = _VERDICT.sub("", _SCORE.sub("", reply)).strip()
    if len(verdicts) != 1:
        problem = "no verdict line" if not verdicts else "contradicting verdict lines"
        return Verdict.reject(
            f"Unparseable judge reply ({problem}; expected 'VERDICT: CORRECT' or 'VERDICT: INCORRECT'); "
            "treated as a rejection."
        )
    correct = verdicts == {"CORRECT"}
    scores = [_score_text(match.group(1)) for match in _SCORE.finditer(reply)]
    if scores:
        raw = scores[-1]
        if not _NUMBER.fullmatch(raw) or not 0.0 <= float(raw) <= 1.0:
            return Verdict.reject(
                f"Unparseable judge reply (SCORE {raw!r} is not a number from 0 to 1); treated as a rejection."
            )
        score = float(raw)
    else:
        score = 1.0 if correct else 0.0
    feedback = reasoning[-_MAX_FEEDBACK:] if reasoning else None
    return Verdict(accepted=correct, score=score, feedback=feedback)


class LLMJudge:
    """Ask a model to check a candidate.

    Args:
        backend: the judge model; ``None`` uses the run's own backend (``ctx.backend``).
        prompt: the user prompt, a ``str.format`` template with ``{question}``, ``{solution}`` and ``{answer}``
            (literal braces doubled). It must ask for the ``VERDICT:`` / ``SCORE:`` lines.
        system: the judge's system message (``None`` for none).
        max_tokens: the judge's completion limit, charged to the run's budget.
        temperature: sampling temperature of the judge (0: the same candidate gets the same verdict).

    Raises:
        ConfigurationError: a bad prompt template; or ``verify`` called outside a run (no ``ctx``).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        prompt: str = JUDGE_PROMPT,
        system: str | None = JUDGE_SYSTEM,
        max_tokens: int = 512,
        temperature: float | None = 0.0,
    ) -> None:
        try:
            prompt.format(question="", solution="", answer="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(
                f"LLMJudge prompt must be a format string using only {{question}}, {{solution}} and {{answer}}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if max_tokens < 1:
            raise ConfigurationError(f"LLMJudge max_tokens must be at least 1 (got {max_tokens})")
        self.backend = backend
        self.prompt = prompt
        self.system = system
        self.max_tokens = max_tokens
        self.temperature = temperature

    def __repr__(self) -> str:
        backend = self.backend.name if self.backend is not None else "run's backend"
        return f"LLMJudge({backend}, max_tokens={self.max_tokens})"

    def prompt_for(self, question: str, candidate: Candidate) -> str:
        """The judge's user message for one candidate."""
        answer = candidate_answer(candidate)
        return self.prompt.format(
            question=question, solution=candidate.text, answer=answer if answer is not None else "(none given)"
        )

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        """Judge ``candidate``. Budget and backend errors propagate: an unpaid or failed check is not a
        verdict."""
        if ctx is None:
            raise ConfigurationError(
                "LLMJudge needs a run context: use it as a strategy's verifier, or pass ctx= to verify()"
            )
        parents = [candidate.node_id] if candidate.node_id is not None else []
        # If the judge's call does not fit the budget, the run stops: it must still have this answer.
        ctx.offer(candidate)
        _node, choice = await ctx.side_call(
            self.system,
            self.prompt_for(question, candidate),
            parents=parents,
            kind="verify",
            strategy="llm-judge",
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            backend=self.backend,
        )
        if choice.truncated_empty:
            return Verdict.reject(
                f"The judge's reply was cut off empty by its token limit ({self.max_tokens}); treated as a rejection."
            )
        return parse_verdict(choice.text)
