"""Values that cross the backend boundary: messages, requests, completions and token usage.

Everything here is frozen and validated by pydantic: a request or a completion is a fact about one call and
must not change after it is recorded in a trace. Requests and messages are pydantic models. What a backend
returns (:class:`Completion`, :class:`Choice`, :class:`Usage`, :class:`TokenLogprob`) is made once per call and
kept by the run's graph, so it is a slotted pydantic dataclass (see :class:`ValueMethods`). Usage keeps
*unknown* (``None``) apart from zero, because servers omit usage (cache hits, some proxies) and a budget must
not read "unknown" as "free".
"""

from __future__ import annotations

import copy
import importlib
import operator
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, TypeAdapter
from pydantic import dataclasses as pydantic_dataclasses

Role = Literal["system", "user", "assistant", "tool"]

ONE_PER_CALL = ConfigDict(extra="forbid")
"""The pydantic config of the slotted dataclasses made once per call (with ``frozen=True, slots=True,
kw_only=True``): an unknown field is refused, as the models refuse it."""


@dataclass(frozen=True, slots=True)
class _Plumbing:
    """What :class:`ValueMethods` needs of one class, found once: its adapter, its field names, a getter of
    all their values."""

    adapter: TypeAdapter[Any]
    names: tuple[str, ...]
    values: Callable[[Any], tuple[Any, ...]]


_PLUMBING: dict[type, _Plumbing] = {}


def adapter_of(cls: type) -> TypeAdapter[Any]:
    """The one ``TypeAdapter`` of a :class:`ValueMethods` class (building one costs milliseconds: the graph's
    hot path and the model methods share it)."""
    return _plumbing(cls).adapter


def _plumbing(cls: type) -> _Plumbing:
    plumbing = _PLUMBING.get(cls)
    if plumbing is None:
        names = tuple(field.name for field in fields(cls))
        getter = operator.attrgetter(*names)
        values = getter if len(names) > 1 else lambda value: (getter(value),)
        plumbing = _PLUMBING[cls] = _Plumbing(TypeAdapter(cls), names, values)
    return plumbing


class ValueMethods:
    """pydantic's model methods, for the values made once per call (a completion, its choices and usage, a
    graph node), which are slotted pydantic dataclasses rather than models.

    Why not models: a run keeps every call's values, and a model is three objects for the garbage collector
    to walk (itself, its ``__dict__``, its set of fields set) where a slotted dataclass is one. A run of
    10,000 calls kept twice as many objects, and its full collections cost more than the rest of the engine's
    work per call. Validation is the same: pydantic checks every field when one is made.

    These methods keep the models' way of reading and copying them (``model_dump``, ``model_copy``, ...), as
    :class:`ChatRequest`, still a model, has it. ``model_copy(update=...)`` validates the new values, where a
    model's trusts them.
    """

    __slots__ = ()

    @classmethod
    def model_validate(cls, obj: Any) -> Self:
        value: Self = _plumbing(cls).adapter.validate_python(obj)
        return value

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        value: Self = _plumbing(cls).adapter.validate_json(data)
        return value

    @classmethod
    def model_json_schema(cls, **options: Any) -> dict[str, Any]:
        return _plumbing(cls).adapter.json_schema(**options)

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """The value as a dict (``mode="json"``, ``exclude_none`` and the rest as pydantic takes them)."""
        dumped: dict[str, Any] = _plumbing(type(self)).adapter.dump_python(self, **_dump_options(options))
        return dumped

    def model_dump_json(self, **options: Any) -> str:
        return _plumbing(type(self)).adapter.dump_json(self, **_dump_options(options)).decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied, validated (``deep``: the values kept are deep copies)."""
        plumbing = _plumbing(type(self))
        values = dict(zip(plumbing.names, plumbing.values(self), strict=True))
        if deep:
            values = copy.deepcopy(values)
        if update:
            values.update(update)
        copied: Self = plumbing.adapter.validate_python(values)
        return copied


def _dump_options(options: dict[str, Any]) -> dict[str, Any]:
    """pydantic ignores ``exclude_unset`` on a dataclass, which records no fields set: refused, rather than
    a dump that silently holds every field."""
    if options.get("exclude_unset"):
        raise TypeError(
            "exclude_unset: thinkloop's per-call values record no unset fields; "
            "exclude_defaults or exclude_none leave out what was not given"
        )
    return options


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Value):
    """One chat message.

    ``tool_calls`` (on an assistant message) and ``tool_call_id`` (on a ``tool`` message) carry a tool-use
    conversation through unchanged, in the OpenAI wire shape; only backends that send them accept them.
    """

    role: Role
    content: str
    tool_calls: tuple[dict[str, Any], ...] | None = None
    tool_call_id: str | None = None


class ChatRequest(_Value):
    """What a strategy asks of a backend: the messages and the sampling settings.

    ``None`` means "not set, use the server's default". ``temperature=0`` is a real value (greedy), never
    read as unset.
    """

    messages: tuple[Message, ...] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=128)
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    """With ``logprobs``: how many most likely alternatives to return at each position (``None``: none).
    Confidence measures (DeepConf) read them; a backend that cannot give them returns only the chosen token's."""
    extra_body: dict[str, Any] | None = None
    """Provider parameters passed through unchanged (``tools``, ``response_format``, ``reasoning_effort``).
    A backend that cannot send them refuses the request rather than dropping them."""
    thinking_budget: int | None = Field(default=None, ge=0)
    """The most tokens an open reasoning model may think before it is made to answer (s1's budget forcing).
    Only a backend that can continue a completion honours it (the in-process llama.cpp one); ``OpenAIBackend``
    refuses such a request before sending it rather than ignore the cap (test doubles hand the request to
    your script as it is). ``None``: think as long as the model likes."""

    @classmethod
    def of(cls, prompt: str, *, system: str | None = None, **sampling: Any) -> ChatRequest:
        """Build a request from a user prompt and an optional system message."""
        messages = [Message(role="system", content=system)] if system else []
        messages.append(Message(role="user", content=prompt))
        return cls(messages=tuple(messages), **sampling)


@pydantic_dataclasses.dataclass(frozen=True, slots=True, kw_only=True, config=ONE_PER_CALL)
class TokenLogprob(ValueMethods):
    """One generated token's log-probability and, when the request asked ``top_logprobs``, the most likely
    tokens at that position (the chosen one usually among them)."""

    token: str
    logprob: float
    top_logprobs: tuple[TokenLogprob, ...] | None = None

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> TokenLogprob:
        """One ``logprobs.content`` entry of the OpenAI chat API, alternatives included when sent."""
        top = entry.get("top_logprobs")
        alternatives = tuple(cls(token=t["token"], logprob=t["logprob"]) for t in top) if top else None
        return cls(token=entry["token"], logprob=entry["logprob"], top_logprobs=alternatives)


@pydantic_dataclasses.dataclass(frozen=True, slots=True, kw_only=True, config=ONE_PER_CALL)
class Choice(ValueMethods):
    """One sampled continuation.

    ``finish_reason="length"`` means the token limit cut it off; with empty text (hidden reasoning ate the
    limit) it is a budget outcome, not an answer: see :attr:`truncated_empty`.

    ``reasoning`` is an open reasoning model's visible thinking (``reasoning_content``, ``reasoning`` or a
    ``<think>`` block), kept apart from ``text``: answers are extracted from ``text`` only.
    """

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    """The model's tool calls, in the OpenAI wire shape (only when the request passed ``tools``)."""

    @property
    def truncated_empty(self) -> bool:
        return self.finish_reason == "length" and not self.text.strip()

    @property
    def mean_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return sum(t.logprob for t in self.logprobs) / len(self.logprobs)


@pydantic_dataclasses.dataclass(frozen=True, slots=True, kw_only=True, config=ONE_PER_CALL)
class Usage(ValueMethods):
    """Tokens billed for one call. ``None`` is "the server did not say", never zero.

    ``reasoning_tokens`` are thinking tokens and are a *part* of ``completion_tokens`` (as in the OpenAI
    API): totals never add them twice. ``reasoning_tokens_estimated`` says the server did not count them
    and the backend estimated them from the reasoning text it got.
    """

    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    reasoning_tokens: NonNegativeInt | None = None
    cached_prompt_tokens: NonNegativeInt | None = None
    reasoning_tokens_estimated: bool = False

    @property
    def known(self) -> bool:
        return self.prompt_tokens is not None and self.completion_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:  # not known
            return None
        return self.prompt_tokens + self.completion_tokens


class RunUsage(_Value):
    """The sum of many calls' usage.

    Calls whose usage was unknown are counted in ``calls_without_usage`` rather than silently adding zero;
    ``calls`` counts every call sent, the ``failed_calls`` among them (billed nothing) included.
    ``estimated_reasoning_tokens`` is the part of ``reasoning_tokens`` that backends estimated rather than
    servers reported, so a sum says whether its reasoning tokens are a count, an estimate, or partly both.
    """

    calls: NonNegativeInt = 0
    calls_without_usage: NonNegativeInt = 0
    failed_calls: NonNegativeInt = 0
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0
    reasoning_tokens: NonNegativeInt = 0
    cached_prompt_tokens: NonNegativeInt = 0
    estimated_reasoning_tokens: NonNegativeInt = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage) -> RunUsage:
        """Return a new sum with one more call's usage in it (added as :meth:`UsageTally.add` adds it)."""
        tally = UsageTally(**self.model_dump())
        tally.add(usage)
        return tally.total()

    def __add__(self, other: RunUsage) -> RunUsage:
        if not isinstance(other, RunUsage):
            return NotImplemented
        return RunUsage.model_construct(
            **{name: getattr(self, name) + getattr(other, name) for name in RunUsage.model_fields}
        )


@dataclass(slots=True)
class UsageTally:
    """A :class:`RunUsage` being added up in place, one call at a time: a run's ledger keeps one (a new
    validated ``RunUsage`` per call cost more than the rest of the sum). Its fields are ``RunUsage``'s, by
    name; :meth:`total` reads them back by ``RunUsage``'s field names, so a field added there and not here
    fails at once."""

    calls: int = 0
    calls_without_usage: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated_reasoning_tokens: int = 0

    def add(self, usage: Usage) -> None:
        """One more answered call. Reasoning and cached tokens are parts of completion and prompt tokens; a
        report that claims more of a part than its whole (or a part without its whole) is clamped, so sums
        keep that shape."""
        prompt = usage.prompt_tokens or 0
        completion = usage.completion_tokens or 0
        reasoning = min(usage.reasoning_tokens or 0, completion)
        self.calls += 1
        if not usage.known:
            self.calls_without_usage += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.reasoning_tokens += reasoning
        self.cached_prompt_tokens += min(usage.cached_prompt_tokens or 0, prompt)
        if usage.reasoning_tokens_estimated:
            self.estimated_reasoning_tokens += reasoning

    def add_failed(self) -> None:
        """One more call that was sent and failed with nothing billed."""
        self.calls += 1
        self.failed_calls += 1

    def total(self) -> RunUsage:
        return RunUsage(**{name: getattr(self, name) for name in RunUsage.model_fields})


@pydantic_dataclasses.dataclass(frozen=True, slots=True, kw_only=True, config=ONE_PER_CALL)
class Completion(ValueMethods):
    """A backend's answer to one :class:`ChatRequest`: one or more choices, usage and latency."""

    choices: tuple[Choice, ...] = Field(min_length=1)
    usage: Usage = Usage()
    latency_s: float = Field(default=0.0, ge=0.0)
    model: str | None = None

    @property
    def text(self) -> str:
        return self.choices[0].text


# --- one style for every subpackage's __init__ ---------------------------------------------------------
# (Here, at the bottom of the layers, because every subpackage uses it: a module map in its docstring and
# its public names loaded on first use, so importing a package costs only the modules a caller touches.)
def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map each public name
    to the module that defines it: relative to the package, or a whole ``thinkloop.`` name for one that lives
    elsewhere (a shared module the package re-exports)."""
    return _loaded_on_first_use(
        package,
        {
            name: module if module.startswith("thinkloop.") else f"{package}.{module}"
            for name, module in exports.items()
        },
    )


_TYPE_CHECKING_BLOCK = re.compile(r"^if (?:typing\.)?TYPE_CHECKING:\n((?:[ \t]+.*\n|[ \t]*\n)+)", re.MULTILINE)
_EXPORT_LINE = re.compile(r"from ([\w.]+) import (\w+) as \2")


def exports_of_imports(
    package: str, source: str, *, extra: Sequence[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for a package whose public names are its ``if
    TYPE_CHECKING:`` block, one ``from MODULE import NAME as NAME`` line each (``source`` is its ``__file__``).

    That block is the one list: type checkers read it (``NAME as NAME`` marks a re-export), and this reads the
    same lines into the table of where each name is loaded from on first use. The lines are matched, not
    parsed: a third of the cost of ``ast.parse``, paid on every ``import thinkloop``; any other line in the block
    is an error here, so the two readings cannot differ. ``extra`` names defined in the package itself
    (``__version__``) join ``__all__``."""
    text = Path(source).read_text(encoding="utf-8")
    block = _TYPE_CHECKING_BLOCK.search(text)
    if block is None:
        raise ImportError(f"{source} has no 'if TYPE_CHECKING:' block of imports to export")
    homes: dict[str, str] = {}
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = _EXPORT_LINE.fullmatch(line)
        if found is None:
            raise ImportError(
                f"{source}: expected 'from MODULE import NAME as NAME' in its TYPE_CHECKING block, got {line!r}"
            )
        homes[found[2]] = found[1]
    names, getattr_, _ = _loaded_on_first_use(package, homes)
    exported = [*names, *extra]
    return exported, getattr_, lambda: exported


def _loaded_on_first_use(
    package: str, homes: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Names from ``homes`` (name to absolute module), each imported on first use and kept."""
    names = sorted(homes)

    def __getattr__(name: str) -> Any:
        module = homes.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(sys.modules[package])[name] = value  # found once: later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
