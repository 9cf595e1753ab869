"""A Conversation carries a chat's earlier turns, follow-ups and ``extra_body``: its fields are typed, read-only,
and reach the backend from every strategy that builds requests from the question, tree search included."""

from __future__ import annotations

import pickle

import pytest

from thinkloop import ChainOfThought, Conversation, Message, ScriptedBackend, SelfConsistency, Strategy, TreeSearch
from thinkloop.backends.base import Capabilities
from thinkloop.types import ChatRequest

HISTORY = (
    Message(role="system", content="You answer in French."),
    Message(role="user", content="Combien font 1 + 1 ?"),
    Message(role="assistant", content="Deux."),
)
FOLLOWUPS = (
    Message(
        role="assistant",
        content="",
        tool_calls=({"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}},),
    ),
    Message(role="tool", content="5", tool_call_id="c1"),
)
EXTRA = {"seed": 7, "tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}]}
SEQUENTIAL = Capabilities(honours_n=False, prompt_overhead_tokens=0)


def _conversation() -> Conversation:
    return Conversation("Et 2 + 3 ?", HISTORY, followups=FOLLOWUPS, extra_body=EXTRA)


def test_a_plain_question_is_a_conversation_with_nothing_around_it() -> None:
    plain = Conversation.of("What is 2 + 3?")
    assert (str(plain), plain.history, plain.followups, plain.extra_body) == ("What is 2 + 3?", (), (), None)
    conversation = _conversation()
    assert Conversation.of(conversation) is conversation
    assert repr(plain) == "Conversation('What is 2 + 3?')"
    assert "history=" in repr(conversation) and "extra_body=" in repr(conversation)


def test_the_fields_are_read_only_and_survive_a_copy() -> None:
    conversation = _conversation()
    with pytest.raises(AttributeError):
        conversation.history = ()  # type: ignore[misc]
    copied = pickle.loads(pickle.dumps(conversation))
    assert (copied, copied.history, copied.followups, copied.extra_body) == (
        conversation,
        HISTORY,
        FOLLOWUPS,
        EXTRA,
    )
    replaced = conversation.with_extra_body({"seed": 1})
    assert (replaced.history, replaced.followups, replaced.extra_body) == (HISTORY, FOLLOWUPS, {"seed": 1})


def _carries_the_conversation(request: ChatRequest) -> bool:
    """The history before the question's message, the follow-ups after it, and the extra body."""
    messages = request.messages
    return (
        messages[1:4] == HISTORY
        and "2 + 3" in (messages[4].content or "")
        and messages[5:7] == FOLLOWUPS
        and request.extra_body == EXTRA
    )


@pytest.mark.parametrize(
    "strategy",
    [
        ChainOfThought(max_tokens=32),
        SelfConsistency(n=3, max_tokens=32),
        TreeSearch(mode="dfs", branching=2, max_depth=2, value_fn=lambda question, steps: 0.9, max_tokens=32),
        TreeSearch(mode="beam", branching=2, beam_width=1, max_depth=2, value_fn=lambda q, s: 0.9, max_tokens=32),
    ],
    ids=["cot", "sc", "tree-dfs", "tree-beam"],
)
def test_every_request_built_from_a_conversation_carries_it_to_the_backend(strategy: Strategy) -> None:
    backend = ScriptedBackend(lambda request: "2 + 3 = 5\nAnswer: 5", capabilities=SEQUENTIAL)
    result = strategy.run_sync(_conversation(), backend=backend)
    assert result.answer == "5"
    assert backend.requests and all(_carries_the_conversation(r) for r in backend.requests)


def test_tree_search_sends_the_earlier_turns_before_its_problem_prompt() -> None:
    backend = ScriptedBackend(lambda request: "Answer: 5", capabilities=SEQUENTIAL)
    TreeSearch(mode="dfs", branching=1, max_depth=2, value_fn=lambda q, s: 0.9).run_sync(
        Conversation("Et 2 + 3 ?", HISTORY, extra_body={"seed": 7}), backend=backend
    )
    [request] = backend.requests
    assert [m.role for m in request.messages] == ["system", "system", "user", "assistant", "user"]
    assert request.messages[1:4] == HISTORY
    assert request.messages[-1].content.startswith("Problem:\nEt 2 + 3 ?\n")  # its own prompt, unchanged
    assert request.extra_body == {"seed": 7}
