"""The values that cross the backend boundary, and usage arithmetic as properties."""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import operator
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from thinkloop.runtime.graph import Node
from thinkloop.types import ChatRequest, Choice, Completion, Message, RunUsage, TokenLogprob, Usage

counts = st.none() | st.integers(min_value=0, max_value=10**7)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    """Per-call usage as servers report it: any field may be unknown; reasoning is part of completion."""
    completion = draw(counts)
    prompt = draw(counts)
    reasoning_cap = completion if completion is not None else 10**7
    reasoning = draw(st.none() | st.integers(min_value=0, max_value=reasoning_cap))
    cached_cap = prompt if prompt is not None else 10**7
    cached = draw(st.none() | st.integers(min_value=0, max_value=cached_cap))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=reasoning,
        cached_prompt_tokens=cached,
    )


def run_usage(items: list[Usage]) -> RunUsage:
    total = RunUsage()
    for usage in items:
        total = total.add(usage)
    return total


FIELDS = list(RunUsage.model_fields)


@given(st.lists(usages()), st.lists(usages()), st.lists(usages()))
def test_run_usage_sums_are_associative(a: list[Usage], b: list[Usage], c: list[Usage]) -> None:
    x, y, z = run_usage(a), run_usage(b), run_usage(c)
    assert (x + y) + z == x + (y + z)
    # Summing parts is the same as summing the whole: ``+`` and ``add`` agree.
    assert x + y + z == run_usage(a + b + c)


@given(st.lists(usages(), max_size=12), st.randoms())
def test_run_usage_does_not_depend_on_order(items: list[Usage], random: object) -> None:
    shuffled = list(items)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert run_usage(shuffled) == run_usage(items)


@given(st.lists(usages()))
def test_run_usage_counts_calls_and_unknowns_and_is_never_negative(items: list[Usage]) -> None:
    total = run_usage(items)
    assert total.calls == len(items)
    assert total.calls_without_usage == sum(1 for u in items if u.prompt_tokens is None or u.completion_tokens is None)
    assert all(getattr(total, name) >= 0 for name in FIELDS)
    assert total.prompt_tokens == sum(u.prompt_tokens or 0 for u in items)
    assert total.completion_tokens == sum(u.completion_tokens or 0 for u in items)


@given(st.lists(usages()))
def test_reasoning_tokens_are_never_counted_twice(items: list[Usage]) -> None:
    total = run_usage(items)
    # Reasoning tokens live inside completion tokens: the total is prompt + completion, nothing more.
    assert total.total_tokens == total.prompt_tokens + total.completion_tokens
    assert total.reasoning_tokens <= total.completion_tokens
    assert total.cached_prompt_tokens <= total.prompt_tokens
    for usage in items:
        if usage.known:
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens  # type: ignore[operator]


def test_reasoning_reported_without_completion_tokens_does_not_exceed_them() -> None:
    # A proxy that reports reasoning tokens but no completion count must not make reasoning > completion.
    total = RunUsage().add(Usage(prompt_tokens=10, completion_tokens=None, reasoning_tokens=50))
    assert (total.reasoning_tokens, total.completion_tokens, total.calls_without_usage) == (0, 0, 1)
    # A report claiming more reasoning than completion counts at most the completion.
    total = total.add(Usage(prompt_tokens=4, completion_tokens=3, reasoning_tokens=5, cached_prompt_tokens=9))
    assert (total.reasoning_tokens, total.completion_tokens) == (3, 3)
    assert (total.cached_prompt_tokens, total.prompt_tokens) == (4, 14)


def test_unknown_usage_is_none_not_zero() -> None:
    unknown = Usage()
    assert unknown.known is False
    assert unknown.total_tokens is None
    zero = Usage(prompt_tokens=0, completion_tokens=0)
    assert zero.known is True
    assert zero.total_tokens == 0
    total = RunUsage().add(unknown).add(zero)
    assert (total.calls, total.calls_without_usage, total.total_tokens) == (2, 1, 0)


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_prompt_tokens"])
def test_negative_token_counts_are_rejected(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Usage(**{field: -1})
    with pytest.raises(ValidationError, match=field):
        RunUsage(**{field: -1})


def test_run_usage_adds_only_run_usage() -> None:
    with pytest.raises(TypeError):
        RunUsage() + Usage(prompt_tokens=1, completion_tokens=1)  # type: ignore[operator]
    assert functools.reduce(operator.add, [RunUsage(calls=1), RunUsage(calls=2)]).calls == 3


def test_request_keeps_temperature_zero_and_builds_messages() -> None:
    request = ChatRequest.of("What is 2 + 2?", system="Be brief.", temperature=0, seed=7, stop=("\n\n",))
    assert request.temperature == 0
    assert request.temperature is not None
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].content == "What is 2 + 2?"
    assert (request.n, request.seed, request.stop) == (1, 7, ("\n\n",))
    assert ChatRequest.of("hi").messages == (Message(role="user", content="hi"),)


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": ()},
        {"messages": (Message(role="user", content="x"),), "n": 0},
        {"messages": (Message(role="user", content="x"),), "temperature": -0.1},
        {"messages": (Message(role="user", content="x"),), "top_p": 0},
        {"messages": (Message(role="user", content="x"),), "max_tokens": 0},
        {"messages": (Message(role="user", content="x"),), "surprise": 1},
    ],
)
def test_request_rejects_invalid_sampling(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest(**bad)  # type: ignore[arg-type]


def test_values_are_frozen() -> None:
    request = ChatRequest.of("hi")
    with pytest.raises(ValidationError):
        request.temperature = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Message(role="wizard", content="x")  # type: ignore[arg-type]


def test_choice_truncated_empty_and_mean_logprob() -> None:
    assert Choice(text="  ", finish_reason="length").truncated_empty
    assert not Choice(text="", finish_reason="stop").truncated_empty
    assert not Choice(text="partial", finish_reason="length").truncated_empty
    choice = Choice(text="ab", logprobs=(TokenLogprob(token="a", logprob=-1.0), TokenLogprob(token="b", logprob=-3.0)))
    assert choice.mean_logprob == -2.0
    assert Choice(text="x").mean_logprob is None


def test_completion_needs_a_choice_and_exposes_the_first_text() -> None:
    with pytest.raises(ValidationError):
        Completion(choices=())
    completion = Completion(choices=(Choice(text="first"), Choice(text="second")))
    assert completion.text == "first"
    assert completion.usage == Usage()


def _per_call_values() -> list[object]:
    logprob = TokenLogprob(token="4", logprob=-0.5, top_logprobs=(TokenLogprob(token="5", logprob=-2.0),))
    choice = Choice(text="Answer: 4", finish_reason="stop", logprobs=(logprob,))
    usage = Usage(prompt_tokens=12, completion_tokens=3, reasoning_tokens=1)
    completion = Completion(choices=(choice,), usage=usage, latency_s=0.5, model="m")
    node = Node(id=1, kind="generate", parents=(0,), completion=completion, usage=usage, data={"k": [1]})
    return [logprob, choice, usage, completion, node]


def test_what_a_run_keeps_per_call_is_one_object_each_for_the_garbage_collector() -> None:
    # A run keeps every call's node, completion, choices and usage: a pydantic model is three objects for the
    # collector (itself, its __dict__, its set of fields set); a slotted dataclass is one.
    for value in _per_call_values():
        assert not hasattr(value, "__dict__"), type(value).__name__
        held = [getattr(value, field.name) for field in dataclasses.fields(value)]  # type: ignore[arg-type]
        beside = [r for r in gc.get_referents(value) if r is not type(value) and all(r is not v for v in held)]
        assert beside == [], type(value).__name__


@pytest.mark.parametrize("value", _per_call_values(), ids=lambda value: type(value).__name__)
def test_per_call_values_keep_the_model_methods(value: Any) -> None:
    kind = type(value)
    assert kind.model_validate(value.model_dump()) == value
    assert kind.model_validate_json(value.model_dump_json()) == value
    assert kind.model_validate(json.loads(value.model_dump_json())) == value
    assert value.model_copy() == value and value.model_copy() is not value
    assert pickle.loads(pickle.dumps(value)) == value
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.model_copy().__setattr__(dataclasses.fields(value)[0].name, None)
    with pytest.raises(ValidationError, match="colour"):  # an unknown field is refused, as a model refuses it
        kind.model_validate(value.model_dump() | {"colour": "red"})


def test_model_copy_of_a_per_call_value_validates_the_update() -> None:
    usage = Usage(prompt_tokens=1, completion_tokens=2)
    assert usage.model_copy(update={"completion_tokens": 5}) == Usage(prompt_tokens=1, completion_tokens=5)
    assert usage == Usage(prompt_tokens=1, completion_tokens=2)  # the original is left alone
    with pytest.raises(ValidationError, match="completion_tokens"):
        usage.model_copy(update={"completion_tokens": -1})
    with pytest.raises(ValidationError, match="choices"):
        Completion(choices=(Choice(text="x"),)).model_copy(update={"choices": ()})
    assert Choice(text="a").model_dump(exclude_none=True) == {"text": "a"}
    assert Usage(prompt_tokens=3).model_dump(exclude_defaults=True) == {"prompt_tokens": 3}


def test_per_call_values_refuse_exclude_unset_rather_than_ignore_it() -> None:
    # A dataclass records no fields set: pydantic would dump every field without a word.
    with pytest.raises(TypeError, match=r"exclude_unset.*exclude_defaults"):
        Usage(prompt_tokens=3).model_dump(exclude_unset=True)
    with pytest.raises(TypeError, match="exclude_unset"):
        Choice(text="a").model_dump_json(exclude_unset=True)


def test_model_copy_deep_and_json_schema_as_models_have_them() -> None:
    node = Node(id=1, kind="generate", data={"scores": [0.5]})
    deep = node.model_copy(deep=True)
    assert deep == node and deep.data is not None and node.data is not None
    assert deep.data is not node.data and deep.data["scores"] is not node.data["scores"]
    schema = Usage.model_json_schema()
    assert schema["additionalProperties"] is False and "prompt_tokens" in schema["properties"]
