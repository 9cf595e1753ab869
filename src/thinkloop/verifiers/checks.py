"""Format checks: cheap verifiers that need no model and no reference.

Use them to gate a costlier verifier (``AllOf(AnswerPresent(), LLMJudge(), concurrent=False)`` pays for the
judge only when there is an answer to judge) or to re-prompt a model that forgot the answer format.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from thinkloop.exceptions import ConfigurationError
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.extract import extract_answer, parse_number

if TYPE_CHECKING:
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.result import Candidate

ANSWER_FORMAT_HINT = "Finish with a last line of the form 'Answer: <final answer>'."


def _compile(pattern: str | re.Pattern[str] | None, flags: int = 0) -> re.Pattern[str] | None:
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ConfigurationError(f"invalid regular expression {pattern!r}: {exc}") from exc


def candidate_answer(candidate: Candidate) -> str | None:
    """The candidate's answer, extracted from its text when the strategy did not set one."""
    return candidate.answer if candidate.answer is not None else extract_answer(candidate.text)


class AnswerPresent:
    """Accepts a candidate that has a final answer, optionally a number or one matching ``pattern``.

    Args:
        numeric: the answer must be a plain number (after normalisation: ``"$1,200"`` counts).
        pattern: a regular expression the whole (normalised) answer must match, e.g. ``r"[A-E]"``.
    """

    def __init__(self, *, numeric: bool = False, pattern: str | re.Pattern[str] | None = None) -> None:
        self.numeric = numeric
        self.pattern = _compile(pattern)

    def __repr__(self) -> str:
        pattern = f", pattern={self.pattern.pattern!r}" if self.pattern is not None else ""
        return f"AnswerPresent(numeric={self.numeric}{pattern})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        answer = candidate_answer(candidate)
        if answer is None:
            return Verdict.reject(f"No final answer found. {ANSWER_FORMAT_HINT}")
        if self.numeric and parse_number(answer) is None:
            return Verdict.reject(f"The final answer {answer!r} is not a number. Give the answer as a number.")
        if self.pattern is not None and self.pattern.fullmatch(answer) is None:
            return Verdict.reject(
                f"The final answer {answer!r} does not have the required form ({self.pattern.pattern})."
            )
        return Verdict.accept()


class FormatVerifier:
    """Accepts a candidate whose *text* matches a regular expression (searched, or matched whole).

    Args:
        pattern: the required format, e.g. ``r"^Answer: .+$"`` with ``flags=re.MULTILINE``.
        fullmatch: the whole text must match, not just a part of it.
        flags: ``re`` flags used when ``pattern`` is a string.
        feedback: what to tell the model when the format is wrong.
    """

    def __init__(
        self,
        pattern: str | re.Pattern[str],
        *,
        fullmatch: bool = False,
        flags: int = 0,
        feedback: str | None = None,
    ) -> None:
        compiled = _compile(pattern, flags)
        assert compiled is not None
        self.pattern = compiled
        self.fullmatch = fullmatch
        self.feedback = feedback or f"The reply does not have the required format ({compiled.pattern})."

    def __repr__(self) -> str:
        return f"FormatVerifier({self.pattern.pattern!r}, fullmatch={self.fullmatch})"

    async def verify(self, question: str, candidate: Candidate, ctx: RunContext | None = None) -> Verdict:
        text = candidate.text.strip() if self.fullmatch else candidate.text
        match = self.pattern.fullmatch(text) if self.fullmatch else self.pattern.search(text)
        return Verdict.accept() if match is not None else Verdict.reject(self.feedback)
