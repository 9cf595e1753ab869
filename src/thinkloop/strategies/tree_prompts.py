"""What tree search asks the model, beside the reader of each reply it asks for.

Two questions, each a class holding its prompt and its parser, so a change to one is seen next to the other:

- :class:`Proposal`: "write the single next step, or the final answer" and :meth:`Proposal.read`, which takes
  the step and tells whether it states the answer (which ends a path).
- :class:`Valuation`: "reply 'SCORE: N', 0 to 10" and :meth:`Valuation.read`, which reads that score
  (:func:`~thinkloop.verifiers.scores.read_score`: the last score stated, ``None`` when there is none).

**Order, for prefix caches.** Both prompts put what a path shares with its parent first: the system prompt,
the problem, then the steps from the root in order, each new step after its parent's. A child's prompt is its
parent's up to the last step, then its own step, then the same short closing line ("Next step:" and the chat
template's turn markers, about ten tokens): sibling prompts and a parent's and child's prompts share all the
rest, which the in-process prefix cache and OpenAI's and vLLM's automatic prefix caching reuse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from thinkloop.strategies.base import ANSWER_FORMAT
from thinkloop.types import Message
from thinkloop.verifiers.scores import read_score

PROPOSE_SYSTEM = (
    "You solve problems one step at a time. Given the problem and the steps so far, write only the single "
    f"next step. When the problem is solved, make that step the final answer. {ANSWER_FORMAT}"
)
VALUE_SYSTEM = (
    "Judge whether the partial solution below is on track to solve the problem correctly: check each step. "
    "Reply with one line and nothing else: 'SCORE: N', where N is a whole number from 0 (a step is wrong, or "
    "it is hopeless) to 10 (every step is right and it leads to the answer)."
)


class Proposal:
    """The next-step prompt for a path and the reader of the step it asks for."""

    system: ClassVar[str] = PROPOSE_SYSTEM
    FINAL: ClassVar[re.Pattern[str]] = re.compile(
        r"answer\s*:|answer\s+is\s*:?\s*[-+$\\(\d]|\\boxed\{|^\s*####", re.IGNORECASE | re.MULTILINE
    )
    """A step that states its answer ("Answer: 10", "The answer is: 10", a box, GSM8K's "#### 10") ends a path:
    the :data:`~thinkloop.strategies.base.ANSWER_FORMAT` line the prompt asks for, and the forms models use
    instead."""

    @classmethod
    def messages(
        cls,
        question: str,
        steps: Sequence[str],
        *,
        history: Sequence[Message] = (),
        followups: Sequence[Message] = (),
    ) -> tuple[Message, ...]:
        """The system prompt, a conversation's earlier turns, then the problem with the path's steps in order
        and the request, then the conversation's follow-ups."""
        so_far = "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(steps)) or "(none yet)"
        return (
            Message(role="system", content=cls.system),
            *history,
            Message(role="user", content=f"Problem:\n{question}\n\nSteps so far:\n{so_far}\n\nNext step:"),
            *followups,
        )

    @classmethod
    def read(cls, reply: str) -> tuple[str, bool]:
        """The step a reply proposes (``""``: none) and whether it states the final answer."""
        step = reply.strip()
        return step, bool(cls.FINAL.search(step))


class Valuation:
    """The value prompt for a partial solution and the reader of the score it asks for."""

    system: ClassVar[str] = VALUE_SYSTEM
    scale: ClassVar[float] = 10.0
    """The scale the prompt states; a reply that writes out another ("7/100") is read on its own."""

    @staticmethod
    def user(question: str, steps: Sequence[str]) -> str:
        """The problem, then the path's steps in order (a sibling's prompt differs only in the last)."""
        return "Problem:\n{}\n\nPartial solution:\n{}".format(question, "\n".join(steps))

    @classmethod
    def read(cls, reply: str) -> float | None:
        """The score as a fraction in [0, 1]; ``None`` when the reply states none (not the same as 0)."""
        return read_score(reply, scale=cls.scale)
