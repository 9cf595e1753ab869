"""The strategy base class: validated options, ``run``/``run_sync`` and composition.

A strategy grows the run's graph through its context (``ctx.call``, ``ctx.sample``, ``ctx.verify``) and
returns an :class:`Outcome`. Any strategy can stand where a single model call stands in another: give it as
``inner=`` and the outer strategy calls its :meth:`Strategy.solve` for each sample, sharing the budget and
the trace.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thinkloop.backends.base import Backend
from thinkloop.exceptions import BackendError, ConfigurationError, describe_validation_error
from thinkloop.runtime.budget import Budget
from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.engine import Engine
from thinkloop.runtime.result import Outcome, Result
from thinkloop.runtime.trace import Sink, redact
from thinkloop.runtime.verdict import Verifier
from thinkloop.types import ChatRequest, Message
from thinkloop.verifiers.extract import extract_answer

ANSWER_FORMAT = "Finish with a last line of the form 'Answer: <final answer>'."
STEP_BY_STEP_SYSTEM = f"You are a careful problem solver. Think step by step. {ANSWER_FORMAT}"
REREAD = "Read the question again: "
"""RE2 (Xu et al., 2024, "Re-Reading Improves Reasoning in Large Language Models"): the question, then this and
the question once more, so a decoder-only model attends to the whole question while reading it."""


class Conversation(str):
    """A question that ends a chat, carrying the rest of the chat with it.

    The text (the ``str`` itself) is the last user message. Pass one wherever a question goes
    (``strategy.run(Conversation(...))``): being a ``str``, it goes through every layer that takes a question
    unchanged, and every request a strategy builds from it (:meth:`Strategy.request`, and tree search's own
    prompts) sends the strategy's system prompt, then ``history``, then the question, then ``followups``, with
    ``extra_body``, so a strategy answers the conversation rather than a flattened string. A plain ``str`` is
    a conversation with none of these: :meth:`of` gives either as a ``Conversation``, so code reads the fields
    through the type rather than by ``getattr``.

    The fields are read-only: one conversation is shared by every sample of a run.
    """

    _history: tuple[Message, ...]
    _followups: tuple[Message, ...]
    _extra_body: dict[str, Any] | None

    def __new__(
        cls,
        question: str,
        history: Iterable[Message] = (),
        *,
        followups: Iterable[Message] = (),
        extra_body: dict[str, Any] | None = None,
    ) -> Conversation:
        self = super().__new__(cls, question)
        self._history = tuple(history)
        self._followups = tuple(followups)
        self._extra_body = extra_body or None
        return self

    @property
    def history(self) -> tuple[Message, ...]:
        """The turns before the question: the client's system, user, assistant and tool turns, in order."""
        return self._history

    @property
    def followups(self) -> tuple[Message, ...]:
        """Assistant and tool turns after the question (a tool-use loop), sent after it."""
        return self._followups

    @property
    def extra_body(self) -> dict[str, Any] | None:
        """Provider parameters (``tools``, ``response_format``, ``reasoning_effort``) sent with every request."""
        return self._extra_body

    @classmethod
    def of(cls, question: str) -> Conversation:
        """``question`` as a conversation: itself when it is one, else the text with no turns around it."""
        return question if isinstance(question, Conversation) else cls(question)

    def with_extra_body(self, extra_body: dict[str, Any] | None) -> Conversation:
        """The same conversation with ``extra_body`` in place of its own."""
        return Conversation(self, self._history, followups=self._followups, extra_body=extra_body)

    def __repr__(self) -> str:
        fields = {"history": self._history, "followups": self._followups, "extra_body": self._extra_body}
        shown = ", ".join(f"{name}={value!r}" for name, value in fields.items() if value)
        return f"Conversation({str(self)!r}{', ' if shown else ''}{shown})"


class StrategyConfig(BaseModel):
    """Options every strategy shares. Unknown options are an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=512, ge=1, description="Per-call completion limit.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    system_prompt: str = STEP_BY_STEP_SYSTEM
    reread: bool = Field(
        default=False,
        description="RE2: state the question twice ('Read the question again: ...'); Xu et al. 2024 report gains",
        json_schema_extra={"unfingerprinted_default": True},
    )


class Strategy(ABC):
    """A reasoning strategy. Subclasses set ``Config`` and ``name`` and implement :meth:`solve`."""

    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    takes_inner: ClassVar[bool] = True
    """Whether an inner strategy can stand where this one's model calls stand."""

    def extract(self, text: str) -> str | None:
        """The answer in a reply's text (``None``: none there); override for another answer format."""
        return extract_answer(text)

    def __init__(self, *, inner: Strategy | None = None, inner_budget: Budget | None = None, **options: Any) -> None:
        try:
            self.config = self.Config(**options)
        except ValidationError as exc:
            raise ConfigurationError(f"{type(self).__name__}: {describe_validation_error(exc)}") from exc
        if inner is not None and not self.takes_inner:
            raise ConfigurationError(f"{type(self).__name__} takes no inner strategy (it makes its own calls)")
        if inner_budget is not None and inner is None:
            raise ConfigurationError(f"{type(self).__name__}: inner_budget needs an inner strategy")
        self.inner = inner
        self.inner_budget = inner_budget
        """Each inner run's slice of the budget (``None``: inner runs share the whole budget)."""

    async def solve_inner(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        """One run of the inner strategy, in its own slice of the budget when ``inner_budget`` is set."""
        if self.inner is None:
            raise ConfigurationError(f"{type(self).__name__} has no inner strategy to run")
        inner_ctx = ctx.child(self.inner_budget) if self.inner_budget is not None else ctx
        return await self.inner.solve(inner_ctx, question, parent=parent)

    def inner_stopped_by_budget(self, ctx: RunContext, outcome: Outcome) -> bool:
        """Whether an inner run stopped because the run's budget is spent, not merely its own slice."""
        return outcome.stop_reason == "budget" and (self.inner_budget is None or ctx.ledger.exhausted())

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump(exclude_defaults=True).items())
        inner = f", inner={self.inner!r}" if self.inner is not None else ""
        return f"{type(self).__name__}({options}{inner})"

    spec: str | None = None
    """The spec this strategy was built from (``sc:n=5``), set by the registry: its name everywhere."""

    @property
    def label(self) -> str:
        """How results and reports name the strategy: the spec it was built from, else a spec of the options
        that differ from the defaults (``sc:n=5,inner="critique"``), which builds the same strategy."""
        if self.spec is not None:
            return self.spec
        from thinkloop.strategies.registry import spec_of

        options = self.config.model_dump(mode="json", exclude_defaults=True)
        if self.inner is not None:
            options["inner"] = self.inner.label
        return spec_of(self.name, options)

    # --- entry points -------------------------------------------------------------------------------
    async def run(
        self,
        question: str,
        *,
        backend: Backend | None = None,
        engine: Engine | None = None,
        budget: Budget | None = None,
        verifier: Verifier | None = None,
        trace_path: str | Path | None = None,
        sinks: Iterable[Sink] = (),
    ) -> Result:
        """Answer ``question``. Give a ``backend`` (a fresh engine is made) or a shared ``engine``."""
        if engine is None:
            if backend is None:
                raise ConfigurationError("run() needs a backend= or an engine=")
            engine = Engine(backend)
        return await engine.run(self, question, budget=budget, verifier=verifier, trace_path=trace_path, sinks=sinks)

    def run_sync(
        self,
        question: str,
        *,
        backend: Backend | None = None,
        engine: Engine | None = None,
        budget: Budget | None = None,
        verifier: Verifier | None = None,
        trace_path: str | Path | None = None,
        sinks: Iterable[Sink] = (),
    ) -> Result:
        """:meth:`run` for code that is not async (the same parameters)."""
        return anyio.run(
            functools.partial(
                self.run,
                question,
                backend=backend,
                engine=engine,
                budget=budget,
                verifier=verifier,
                trace_path=trace_path,
                sinks=sinks,
            )
        )

    @abstractmethod
    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        """Grow the graph under ``parent`` and return this strategy's pick. ``question`` may be a
        :class:`Conversation`: every request built from it carries its turns and ``extra_body``."""

    # --- helpers for subclasses ---------------------------------------------------------------------
    def request(self, question: str, *, extra: Iterable[Message] = (), **sampling: Any) -> ChatRequest:
        """The strategy's prompt for ``question``: its system prompt (when not empty), the turns before the
        question when it is a :class:`Conversation`, the question, any follow-ups."""
        config = self.config
        conversation = Conversation.of(question)
        messages = [Message(role="system", content=config.system_prompt)] if config.system_prompt else []
        messages.extend(conversation.history)
        text = str(question)
        messages.append(Message(role="user", content=f"{text}\n\n{REREAD}{text}" if config.reread else text))
        messages.extend(conversation.followups)
        messages.extend(extra)
        params: dict[str, Any] = {"max_tokens": config.max_tokens, "temperature": config.temperature}
        if conversation.extra_body:
            params["extra_body"] = conversation.extra_body
        params.update(sampling)
        return ChatRequest(messages=tuple(messages), **params)

    async def draw(
        self,
        ctx: RunContext,
        question: str,
        k: int,
        *,
        parent: int,
        into: Samples | None = None,
        **sampling: Any,
    ) -> Samples:
        """``k`` candidates: from the inner strategy when there is one, else from the model directly.

        ``into`` collects them as they arrive, so a caller can vote over a partial draw if the run stops.
        """
        if self.inner is None:
            return await ctx.sample(
                self.request(question, **sampling), k, parents=[parent], strategy=self.name, into=into
            )
        result = into if into is not None else Samples(requested=k)

        async def one() -> None:
            try:
                outcome = await self.solve_inner(ctx, question, parent=parent)
            except BackendError as exc:  # one failed inner run must not discard the others
                result.errors.append(redact(str(exc)))
                return
            if outcome.candidate is not None:
                result.candidates.append(outcome.candidate)
            if self.inner_stopped_by_budget(ctx, outcome):
                result.budget_hit = True
            elif outcome.stop_reason == "budget":
                result.notes.append("an inner run spent its inner_budget slice")
            elif outcome.stop_reason == "error":
                result.errors.extend(outcome.notes or ("the inner strategy failed",))

        async with anyio.create_task_group() as group:
            for _ in range(k):
                group.start_soon(one)
        return result
