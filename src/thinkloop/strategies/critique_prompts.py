"""What critique-and-revise asks the model, beside the reader of each reply it asks for.

A prompt and the parser of its reply change together (a critic told to reply 'NO ISSUES' needs a reader of
exactly that all-clear), so they live side by side here rather than in the strategy's control flow:

- :class:`Critic`: the critic's system prompt and request text, and :meth:`Critic.all_clear`, which reads
  whether the reply found nothing to fix.
- :func:`revision_turns`: the turns that ask for a corrected solution; the reply ends with the
  :data:`~thinkloop.strategies.base.ANSWER_FORMAT` line, which the strategy's ``extract`` reads like any answer.

**Order, for prefix caches.** Each revision's prompt is the previous prompt with the reply to it and the new
critique appended (:func:`revision_turns` adds two turns at the end, never rewrites earlier ones): the
in-process model's prefix cache, OpenAI's and vLLM's automatic prefix caching reuse everything before them.
Self-Refine (Madaan et al., 2023) keeps this whole history of attempts and feedback in its refine prompt too.
"""

from __future__ import annotations

import re
from typing import ClassVar

from thinkloop.strategies.base import ANSWER_FORMAT
from thinkloop.types import Message

NO_ISSUES = "NO ISSUES"

CRITIC_SYSTEM = (
    "You review solutions. Check each step of the solution below. If it is fully correct, reply exactly "
    f"'{NO_ISSUES}'. Otherwise list the mistakes briefly."
)

REVISE_PROMPT = "A reviewer found these problems:\n{critique}\n\nWrite a corrected solution. " + ANSWER_FORMAT
"""The user turn after an attempt: the critique, then the request for a corrected solution."""


class Critic:
    """The critic's prompt (one solution, shown with its problem) and the reader of its reply."""

    system: ClassVar[str] = CRITIC_SYSTEM
    _ALL_CLEAR: ClassVar[re.Pattern[str]] = re.compile(r"\W*no issues\W*$", re.IGNORECASE)
    """The whole reply is the all-clear (not "step 1 has no issues, but step 2 ...")."""

    @staticmethod
    def user(question: str, solution: str) -> str:
        """The critic sees the latest solution alone: earlier attempts would only distract its review."""
        return f"Problem:\n{question}\n\nSolution:\n{solution}"

    @classmethod
    def all_clear(cls, reply: str) -> bool:
        """Whether the critic's reply is the all-clear the prompt asks for, and nothing else."""
        return cls._ALL_CLEAR.match(reply.strip()) is not None


def revision_turns(attempt: str, critique: str) -> tuple[Message, Message]:
    """The two turns appended for a revision: the attempt as the model's reply, then the critique."""
    return (
        Message(role="assistant", content=attempt),
        Message(role="user", content=REVISE_PROMPT.format(critique=critique)),
    )
