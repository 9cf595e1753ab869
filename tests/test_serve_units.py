"""The parts of ``thinkloop serve`` that need no server: names, the effort table, request checks, plans,
the readable account, the trace store, and the conversation strategies now receive."""

from __future__ import annotations

import json

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.backends.openai import OpenAIBackend
from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.runtime.engine import Engine
from thinkloop.serve.account import ReasoningAccount
from thinkloop.serve.effort import EFFORT_TABLE, EFFORTS, model_takes_effort
from thinkloop.serve.errors import ApiError
from thinkloop.serve.plan import Settings, plan_call
from thinkloop.serve.runs import RunReply, run_one
from thinkloop.serve.schema import parse_chat
from thinkloop.serve.selection import ModelName, parse_model_name, prefixed
from thinkloop.serve.traces import TraceStore
from thinkloop.serve.upstream import Upstream
from thinkloop.strategies.base import Conversation
from thinkloop.strategies.cot import ChainOfThought, Direct
from thinkloop.strategies.registry import build_strategy
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.types import ChatRequest, Message

TRICKY = [
    "gpt-4o",
    "o3-mini",
    "meta-llama/Llama-3.1-8B-Instruct",
    "qwen2.5:7b-instruct-q4_K_M",
    "ft:gpt-4o-mini:org:custom:id",
    "sc:n=8",
    "cot",
    "thinkloop-7b",
    "thinkloop/x",
    "thinkloop:latest",
    "hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M",
    "models/gemini-1.5-pro",
]


# --- the model-name prefix --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TRICKY)
def test_model_names_are_never_read_as_a_strategy(name: str) -> None:
    assert parse_model_name(name) == ModelName(model=name, strategy=None)


@pytest.mark.parametrize("model", [*TRICKY, None])
@pytest.mark.parametrize("spec", ["sc:n=8", "sc:n=8,adaptive=true", "tree:mode=beam", "cot", "critique:max_rounds=2"])
def test_a_prefix_on_any_model_name_reads_back(spec: str, model: str | None) -> None:
    assert parse_model_name(prefixed(spec, model)) == ModelName(model=model, strategy=spec)


@given(st.text(min_size=1).filter(lambda s: not s.startswith("thinkloop[") and s != "thinkloop"))
def test_any_name_without_the_opening_is_a_model_name(name: str) -> None:
    assert parse_model_name(name) == ModelName(model=name, strategy=None)


@given(spec=st.text(min_size=1).filter(lambda s: s.strip() and "]" not in s), model=st.text(min_size=1) | st.none())
def test_prefix_round_trip(spec: str, model: str | None) -> None:
    assert parse_model_name(prefixed(spec, model)) == ModelName(model=model, strategy=spec.strip())


@pytest.mark.parametrize(
    "name", ["thinkloop[", "thinkloop[sc", "thinkloop[]", "thinkloop[ ]/m", "thinkloop[sc]/", "thinkloop[sc]x"]
)
def test_malformed_prefixes_are_errors(name: str) -> None:
    with pytest.raises(ValueError, match=r"model 'thinkloop\["):
        parse_model_name(name)


# --- the effort table -------------------------------------------------------------------------------------
def test_every_effort_has_a_buildable_strategy_and_rising_budgets() -> None:
    assert tuple(EFFORT_TABLE) == EFFORTS
    for plan in EFFORT_TABLE.values():
        build_strategy(plan.strategy)
    tokens = [EFFORT_TABLE[e].tokens for e in EFFORTS]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


@pytest.mark.parametrize(
    ("model", "takes"),
    [
        ("o1", True),
        ("o1-2024-12-17", True),
        ("o3-mini", True),
        ("o3", True),
        ("o4-mini", True),
        ("gpt-5", True),
        ("openai/o3", True),
        ("o1-mini", False),
        ("o1-preview", False),
        ("o1-mini-2024-09-12", False),
        ("gpt-4o", False),
        ("omni", False),
        ("qwen3:8b", False),
    ],
)
def test_which_models_take_reasoning_effort(model: str, takes: bool) -> None:
    assert model_takes_effort(model) is takes


# --- request checks and plans -----------------------------------------------------------------------------
def body(**fields: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "What is 1 + 2?"}]} | fields


def test_the_conversation_keeps_every_turn_and_role() -> None:
    call = parse_chat(
        body(
            messages=[
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function", "function": {}}]},
                {"role": "tool", "tool_call_id": "1", "content": "3"},
                {"role": "user", "content": "so?"},
            ],
            metadata={"x": 1},
            store=False,
        ),
        max_n=4,
    )
    conversation = call.conversation
    assert str(conversation) == "so?"
    assert [(m.role, m.content) for m in conversation.history] == [
        ("system", "be brief"),
        ("user", "a\nb"),
        ("assistant", ""),
        ("tool", "3"),
    ]
    assert conversation.history[2].tool_calls == ({"id": "1", "type": "function", "function": {}},)
    assert call.ignored == ("metadata", "store")


def test_only_assistant_and_tool_turns_may_follow_the_question() -> None:
    call = parse_chat(
        body(
            messages=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]},
                {"role": "tool", "tool_call_id": "1", "content": "3"},
            ]
        ),
        max_n=1,
    )
    assert str(call.conversation) == "q" and [m.role for m in call.conversation.followups] == ["assistant", "tool"]


def upstream(model: str) -> Upstream:
    return Upstream(OpenAIBackend(model, base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0))


def test_reasoning_effort_passes_through_to_a_reasoning_upstream() -> None:
    plan = plan_call(
        parse_chat(body(model="o3-mini", reasoning_effort="high"), max_n=1), Settings(), upstream("o3-mini")
    )
    assert (plan.strategy.name, plan.selected_by) == ("direct", "reasoning_effort")
    assert plan.conversation.extra_body == {"reasoning_effort": "high"}
    # The table's budget is for thinkloop's own strategies: only the operator's ceiling holds.
    assert plan.budget.tokens == Settings().ceiling.tokens


def test_reasoning_effort_maps_through_the_table_for_a_chat_model() -> None:
    plan = plan_call(
        parse_chat(body(model="gpt-4o", reasoning_effort="medium"), max_n=1),
        Settings(budget_tokens=10_000),
        upstream("gpt-4o"),
    )
    assert plan.spec == EFFORT_TABLE["medium"].strategy and plan.conversation.extra_body is None
    assert plan.budget.tokens == 10_000  # the server's cap wins over the table


def test_the_server_cap_bounds_what_a_request_asks_for() -> None:
    call = parse_chat(body(model="gpt-4o", thinkloop={"budget": {"tokens": 50_000, "seconds": 9}}), max_n=1)
    plan = plan_call(call, Settings(budget_tokens=2_000), upstream("gpt-4o"))
    assert (plan.budget.tokens, plan.budget.seconds) == (2_000, 9)


def test_sampling_parameters_are_reported_when_the_model_cannot_take_them() -> None:
    local = Upstream(ScriptedBackend(["Answer: 3"], name="local"))
    plan = plan_call(parse_chat(body(model="local", top_p=0.5, seed=1), max_n=1), Settings(), local)
    assert plan.ignored == ("seed", "top_p") and plan.conversation.extra_body is None
    with pytest.raises(ApiError, match="cannot take them"):
        plan_call(parse_chat(body(model="thinkloop[direct]", tools=[{}]), max_n=1), Settings(), local)


# --- the conversation reaches the model ------------------------------------------------------------------
def test_request_sends_the_strategy_prompt_then_the_conversation() -> None:
    history = (
        Message(role="system", content="terse"),
        Message(role="user", content="hi"),
        Message(role="assistant", content="hello"),
    )
    question = Conversation("What is 2 + 2?", history, extra_body={"seed": 3})
    request = ChainOfThought().request(question)
    assert [m.role for m in request.messages] == ["system", "system", "user", "assistant", "user"]
    assert request.messages[-1].content == "What is 2 + 2?" and type(request.messages[-1].content) is str
    assert request.extra_body == {"seed": 3}
    plain = Direct(system_prompt="").request("What is 2 + 2?")
    assert [(m.role, m.content) for m in plain.messages] == [("user", "What is 2 + 2?")]


def test_openai_backend_sends_tools_and_tool_turns_and_reads_tool_calls() -> None:
    sent: list[dict] = []
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(
            200,
            json={
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    }
                ],
                "usage": None,
            },
        )

    async def main() -> None:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        backend = OpenAIBackend("gpt-4o", api_key="k", http_client=client, max_retries=0)
        request = ChatRequest(
            messages=(
                Message(role="user", content="q"),
                Message(role="assistant", content="", tool_calls=(call,)),
                Message(role="tool", content="3", tool_call_id="c1"),
            ),
            extra_body={"tools": [{"type": "function"}], "response_format": {"type": "json_object"}},
        )
        completion = await backend.complete(request)
        assert completion.choices[0].tool_calls == (call,)
        await backend.aclose()

    anyio.run(main)
    assert sent[0]["tools"] == [{"type": "function"}] and sent[0]["response_format"] == {"type": "json_object"}
    assert sent[0]["messages"][1]["tool_calls"] == [call] and sent[0]["messages"][2]["tool_call_id"] == "c1"


# --- the account and the reply ---------------------------------------------------------------------------
def test_account_narrates_samples_and_the_vote_and_counts_answer_tokens() -> None:
    replies = ["two plus two. Answer: 4", "four. Answer: 4", "hmm. Answer: 5"]
    backend = ScriptedBackend(replies)
    paragraphs: list[str] = []
    account = ReasoningAccount(paragraphs.append)
    result = SelfConsistency(n=3).run_sync("What is 2 + 2?", backend=backend, sinks=[account])
    account.flush()
    text = account.text
    assert text.startswith("Strategy sc:n=3 on scripted.")
    assert "Vote over 3 of 3 samples: 4 ×2, 5 ×1 → 4." in text
    assert text.endswith("Stopped: completed (every sample drawn: 4 has 2 of 3 samples); answer 4.\n")
    assert "".join(paragraphs) == text
    reply = RunReply(index=0, result=result, account=account)
    # One call drew three choices; the chosen one's share of its completion tokens is by length.
    chosen = result.text
    total = result.usage.completion_tokens
    assert reply.answer_tokens() == round(total * len(chosen) / sum(map(len, replies)))
    assert reply.finish_reason() == "stop" and reply.message()["content"] == chosen


def test_a_five_way_tie_is_a_warning_in_the_thinkloop_extension_and_in_the_reasoning() -> None:
    from thinkloop.runtime.budget import Budget
    from thinkloop.serve.plan import Plan
    from thinkloop.strategies.base import Conversation

    account = ReasoningAccount()
    strategy = SelfConsistency(n=5)
    result = strategy.run_sync("q", backend=ScriptedBackend([f"Answer: {i}" for i in range(1, 6)]), sinks=[account])
    account.flush()
    plan = Plan(
        strategy=strategy, spec="sc:n=5", selected_by="thinkloop", budget=Budget(), conversation=Conversation("q")
    )
    info = RunReply(index=0, result=result, account=account).info(plan)
    tie = "tied vote: 1, 2, 3, 4, 5 with 1 each; 1 won the tie-break"
    assert info["warnings"] == [tie]
    assert (info["verdict"], info["feedback"]) == ("unchecked", None)
    assert info["stop_detail"] == "votes spread: every sample drawn, no majority (1 has 1 of 5 samples)"
    assert account.text.endswith(f"Warning: {tie}\n")


def test_account_holds_back_failures_until_something_succeeds() -> None:
    paragraphs: list[str] = []
    account = ReasoningAccount(paragraphs.append)

    def fail(request: ChatRequest) -> str:
        raise RuntimeError("upstream down")

    ChainOfThought().run_sync("q", backend=ScriptedBackend(fail), sinks=[account])
    assert paragraphs == [] and "A generate call failed" in account.text


def test_trace_store_keeps_the_last_runs() -> None:
    store = TraceStore(2)
    for run_id in ("a", "b", "c"):
        store.sink(run_id)
    assert store.jsonl("a") is None and store.jsonl("b") == "" and len(store) == 2


# --- the command's own errors, before anything listens -----------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--base-url", "http://127.0.0.1:9/v1"], "thinkloop serve: error: --base-url needs --model NAME"),
        (
            ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--strategy", "magic"],
            "thinkloop: error: unknown strategy 'magic'",
        ),
        (["--max-concurrency", "0"], "argument --max-concurrency: expected a positive integer, got 0"),
    ],
)
def test_serve_refuses_bad_flags_in_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.cli import main

    assert main(["serve", *argv]) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# --- issue 24: the ceiling, the trace store's size, what an o-series upstream changes ----------------------
def test_kept_traces_are_bounded_by_size() -> None:
    from thinkloop.runtime.trace import RunStarted

    store = TraceStore(100, max_bytes=10_000)
    for run_id in "abcdef":
        store.sink(run_id)(RunStarted(run_id=run_id, question="x" * 3_000, strategy="cot", model="m"))
        store.finished(run_id)
    assert store.bytes <= 10_000 and len(store) == 3 and store.jsonl("a") is None and store.jsonl("f")


@pytest.mark.parametrize(
    ("spec", "samples"),
    [
        ("cot", 1),
        ("direct", 1),
        ("sc:n=8", 8),
        ("sc:n=128,inner='sc:n=128'", 16_384),
        ("bon:n=4", 8),
        ("critique:max_rounds=3", 7),
        ("effort:high", 32),
    ],
)
def test_worst_case_samples(spec: str, samples: int) -> None:
    from thinkloop.serve.ceiling import worst_case_samples

    assert worst_case_samples(build_strategy(spec)) == samples


def test_an_o_series_upstream_lists_what_it_drops_and_folds() -> None:
    call = parse_chat(
        body(
            model="thinkloop[direct]",
            temperature=0.5,
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"}],
        ),
        max_n=1,
    )
    plan = plan_call(call, Settings(), upstream("o1"))
    assert "temperature" in plan.ignored and "folded" in plan.changed["messages"]


def test_error_bodies_hide_url_credentials_and_retry_after_inf_is_a_number() -> None:
    error = ApiError(502, "cannot reach http://alice:pw-123@host:9/v1: refused", retry_after=float("inf"))
    assert "pw-123" not in json.dumps(error.body()) and error.headers() == {"retry-after": "3600"}


# --- optillm's approach slugs (issue 28) ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "extra", "spec"),
    [
        ("moa-gpt-4o", {}, "moa:n=3"),
        ("bon-gpt-4o", {}, "bon:n=3"),
        ("re2-gpt-4o", {}, "cot:reread=true"),
        ("gpt-4o", {"optillm_approach": "self_consistency"}, "sc:n=5"),
        ("mcts-gpt-4o", {"optillm_approach": "mcts"}, "tree:mode=mcts"),
        ("gpt-4o", {"optillm_approach": "auto"}, "cot"),  # auto: the slug, else the server's default
    ],
)
def test_optillm_approaches_run_as_their_thinkloop_equivalent(model: str, extra: dict, spec: str) -> None:
    plan = plan_call(parse_chat(body(model=model, **extra), max_n=1), Settings(), upstream("gpt-4o"))
    assert plan.spec == spec
    assert plan.selected_by == ("default" if spec == "cot" else "optillm")


@pytest.mark.parametrize(
    ("model", "extra", "nearest", "param"),
    [
        ("rstar-gpt-4o", {}, "tree:mode=mcts", "model"),
        ("plansearch-gpt-4o", {}, "bon", "model"),
        ("bon&moa-gpt-4o", {}, "bon:n=3", "model"),
        ("gpt-4o", {"optillm_approach": "leap"}, "cot", "optillm_approach"),
    ],
)
def test_other_optillm_approaches_are_a_400_naming_the_nearest_strategy(
    model: str, extra: dict, nearest: str, param: str
) -> None:
    with pytest.raises(ApiError) as caught:
        plan_call(parse_chat(body(model=model, **extra), max_n=1), Settings(), upstream("gpt-4o"))
    assert caught.value.status == 400 and caught.value.param == param
    assert f"nearest thinkloop strategy: {nearest!r}" in str(caught.value)


def test_optillm_slugs_leave_model_names_alone_and_conflicts_are_errors() -> None:
    # a served model whose own name starts like a slug is that model, not an approach
    plan = plan_call(parse_chat(body(model="moa-chat"), max_n=1), Settings(), upstream("moa-chat"))
    assert plan.selected_by == "default"
    with pytest.raises(ApiError, match="is not served here"):
        plan_call(parse_chat(body(model="moa-other-model"), max_n=1), Settings(), upstream("gpt-4o"))
    with pytest.raises(ApiError, match="two strategies"):
        plan_call(
            parse_chat(body(model="moa-gpt-4o", thinkloop={"strategy": "sc"}), max_n=1), Settings(), upstream("gpt-4o")
        )
    with pytest.raises(ApiError, match="two optillm approaches"):
        plan_call(parse_chat(body(model="moa-gpt-4o", optillm_approach="bon"), max_n=1), Settings(), upstream("gpt-4o"))


# --- an upstream refusal is answered with its own status, read from the typed failure (not the message) ------
@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "context_length_exceeded", 400),
        (422, None, 422),
        (429, "rate_limit_exceeded", 429),
        (500, None, 502),
        (401, "invalid_api_key", 502),
    ],
)
def test_an_upstream_refusal_is_answered_with_its_status(status: int, code: str | None, expected: int) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        # A message that names another status: only the HTTP status may decide the answer.
        error = {
            "message": "upstream answered 418: teapot",
            "type": "invalid_request_error",
            "param": None,
            "code": code,
        }
        return httpx2.Response(status, json={"error": error}, headers={"retry-after": "7"})

    async def main() -> ApiError:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        upstream = Upstream(OpenAIBackend("gpt-4o", api_key="k", http_client=client, max_retries=0))
        call = parse_chat(body(model="gpt-4o", thinkloop={"strategy": "direct"}), max_n=1)
        plan = plan_call(call, Settings(), upstream)
        with pytest.raises(ApiError) as caught:
            await run_one(plan, Engine(upstream), TraceStore(4))
        await upstream.aclose()
        return caught.value

    error = anyio.run(main)
    assert error.status == expected
    if expected == 429:
        assert error.retry_after == 7
