"""DeepConf: confidence measures, the offline filter and weighted vote, the online threshold, early stops
and the consensus stop, all on scripted replies whose log-probabilities are known."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.backends.base import Capabilities
from thinkloop.backends.scripted import ScriptedBackend, confident_reply
from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.budget import Budget
from thinkloop.strategies.confidence import group_confidences, measure, percentile, token_confidence
from thinkloop.strategies.deepconf import DeepConf
from thinkloop.strategies.registry import build_strategy
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.types import ChatRequest, Choice, TokenLogprob

pytestmark = pytest.mark.anyio

LOGPROBS = Capabilities(honours_n=True, prompt_overhead_tokens=0, logprobs=True)


def unsure(answer: str) -> Choice:
    return confident_reply(f"I think it may be maybe {answer} . Answer: {answer}", 0.4)


def sure(answer: str) -> Choice:
    return confident_reply(f"Working it out carefully gives {answer} . Answer: {answer}", 0.95)


# Plurality wrong (41, four unsure traces), minority right (42, three sure traces), one stray unsure 40.
WRONG_BUT_UNSURE = [
    unsure("41"),
    sure("42"),
    unsure("41"),
    sure("42"),
    unsure("41"),
    unsure("40"),
    sure("42"),
    unsure("41"),
]


def test_token_confidence_is_deepconf_minus_mean_top_logprob_else_probability() -> None:
    top = (TokenLogprob(token="a", logprob=math.log(0.9)), TokenLogprob(token="b", logprob=math.log(0.1)))
    token = TokenLogprob(token="a", logprob=math.log(0.9), top_logprobs=top)
    assert token_confidence(token) == pytest.approx(-(math.log(0.9) + math.log(0.1)) / 2)
    assert token_confidence(TokenLogprob(token="a", logprob=math.log(0.9))) == pytest.approx(0.9)
    # a peaked distribution is surer than a flat one
    sure_token, unsure_token = confident_reply("x", 0.95).logprobs[0], confident_reply("x", 0.5).logprobs[0]
    assert token_confidence(sure_token) > token_confidence(unsure_token)


def test_measures_read_the_right_stretch() -> None:
    values = [5.0, 5.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert measure(values, "mean") == pytest.approx(4.2)
    assert measure(values, "lowest_group", window=2) == 1.0  # the one confused stretch
    assert measure(values, "tail", tail=3) == 5.0
    assert measure(values, "bottom10", window=2) == 1.0
    assert group_confidences([1.0, 2.0], window=8) == [1.5]  # shorter than a window: one group
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40), st.integers(1, 12))
def test_group_confidence_bounds(values: list[float], window: int) -> None:
    groups = group_confidences(values, window)
    assert len(groups) == max(1, len(values) - window + 1)
    assert min(values) - 1e-9 <= min(groups) <= max(values) + 1e-9
    if window == 1:
        assert min(groups) == pytest.approx(min(values))


async def test_confidence_voting_answers_right_where_plain_vote_is_wrong_with_no_more_tokens() -> None:
    plain = await SelfConsistency(n=8).run("q", backend=ScriptedBackend(list(WRONG_BUT_UNSURE), capabilities=LOGPROBS))
    backend = ScriptedBackend(list(WRONG_BUT_UNSURE), capabilities=LOGPROBS)
    confident = await DeepConf(n=8, keep_percent=50).run("q", backend=backend)
    assert plain.answer == "41"
    assert confident.answer == "42"
    assert confident.usage.total_tokens <= plain.usage.total_tokens
    assert backend.requests[0].logprobs and backend.requests[0].top_logprobs == 5
    # the decisions: the four most confident traces kept (three sure, then the best unsure), the rest pruned
    assert confident.data["kept"] == 4
    pruned = [n for n in confident.graph.nodes() if n.status == "pruned"]
    assert len(pruned) == 4 and all("outside the top 50%" in n.data["pruned"] for n in pruned)
    assert confident.votes["42"] == 3


async def test_weighting_alone_outvotes_an_unsure_plurality() -> None:
    """keep_percent=100 keeps all eight: the weights alone (3 x 1.52 against 4 x 0.71) decide."""
    result = await DeepConf(n=8, keep_percent=100).run(
        "q", backend=ScriptedBackend(list(WRONG_BUT_UNSURE), capabilities=LOGPROBS)
    )
    assert result.answer == "42" and result.votes == {"42": 3, "41": 4, "40": 1}


async def test_a_backend_without_logprobs_is_an_error_not_a_plain_vote() -> None:
    backend = ScriptedBackend(list(WRONG_BUT_UNSURE))  # advertises no logprobs
    with pytest.raises(ConfigurationError, match="log-probabilities"):
        await DeepConf(n=8).run("q", backend=backend)
    assert backend.requests == []  # refused before spending anything
    result = await DeepConf(n=8, without_logprobs="vote").run("q", backend=ScriptedBackend(list(WRONG_BUT_UNSURE)))
    assert result.answer == "41"
    assert any("plain, unweighted vote" in note for note in result.notes)


async def test_online_sets_threshold_from_warmup_and_stops_at_consensus() -> None:
    # warm-up: two sure 42s, one unsure 41, one sure 42 -> threshold at the 10th percentile of the four
    replies = [sure("42"), sure("42"), unsure("41"), sure("42"), *[sure("42")] * 12]
    backend = ScriptedBackend(replies, capabilities=LOGPROBS)
    result = await DeepConf(n=16, mode="online", warmup=4, keep_percent=75, consensus=0.95).run("q", backend=backend)
    assert result.answer == "42"
    assert result.stop_reason == "converged"
    # the unsure warm-up trace fell below the threshold (the 25th percentile), so the three sure ones agree
    # completely: sampling stops right after the warm-up
    assert result.data["stopped"] == 1 and result.data["kept"] == 3
    assert sum(r.n for r in backend.requests) == 4


async def test_online_chunked_stops_an_unsure_trace_early_and_saves_its_tokens() -> None:
    """Warm-up sets the threshold; a later trace that turns unsure is cut at its first piece."""
    long_sure = "so " * 20 + "Answer: 42"
    long_unsure = "hmm " * 20 + "Answer: 41"
    calls: list[ChatRequest] = []

    def reply(request: ChatRequest) -> Choice:
        calls.append(request)
        continuing = request.messages[-1].role == "assistant"
        index = len(calls)
        if index <= 2:  # two sure warm-up traces, whole, that disagree (no consensus yet)
            return confident_reply(long_sure if index == 1 else long_sure.replace("42", "43"), 0.95)
        # after the warm-up: traces come in pieces of 8 words; the odd ones unsure throughout
        wanted = request.max_tokens
        so_far = request.messages[-1].content if continuing else ""
        text = long_unsure if (index % 2 == 1 and not continuing) or "hmm" in so_far else long_sure
        done = len(request.messages[-1].content.split()) if continuing else 0
        words = text.split()[done : done + wanted]
        piece = " ".join(words) + " "
        return Choice(
            text=piece,
            finish_reason="length" if done + wanted < len(text.split()) else "stop",
            logprobs=confident_reply(piece, 0.95 if "so" in piece or "42" in piece else 0.3).logprobs,
        )

    backend = ScriptedBackend(reply, capabilities=LOGPROBS)
    result = await DeepConf(
        n=4,
        mode="online",
        warmup=2,
        parallel=1,
        chunk_tokens=8,
        window=4,
        keep_percent=90,
        consensus=0.95,
        max_tokens=64,
    ).run("q", backend=backend)
    assert result.answer == "42"
    stopped = [n for n in result.graph.nodes() if n.status == "pruned"]
    assert len(stopped) == 1 and "stopped after 8 tokens" in stopped[0].data["pruned"]
    assert result.data["stopped"] == 1
    # the unsure trace cost one piece of 8 tokens, not its 21
    unsure_calls = [r for r in calls[2:] if r.messages[-1].role != "assistant"]
    assert len(unsure_calls) == 2  # two traces started after the warm-up
    assert any(r.messages[-1].role == "assistant" and r.messages[-1].content.startswith("so") for r in calls)
    assert not any(r.messages[-1].role == "assistant" and r.messages[-1].content.startswith("hmm") for r in calls)


async def test_registry_lists_and_builds_deepconf() -> None:
    strategy = build_strategy("deepconf-online:warmup=2,chunk_tokens=32")
    assert isinstance(strategy, DeepConf) and strategy.config.mode == "online" and strategy.config.chunk_tokens == 32
    with pytest.raises(ConfigurationError, match="takes no inner"):
        DeepConf(inner=SelfConsistency())


async def test_budget_stops_drawing_and_still_answers() -> None:
    backend = ScriptedBackend([sure("42")] * 20, capabilities=LOGPROBS)
    result = await DeepConf(n=16, mode="online", warmup=2, consensus=1.0, parallel=1, max_tokens=20).run(
        "q", backend=backend, budget=Budget(calls=4)
    )
    assert result.answer == "42"
    assert result.usage.calls <= 4


async def test_self_consistency_weighted_by_logprob_asks_for_them() -> None:
    backend = ScriptedBackend(list(WRONG_BUT_UNSURE), capabilities=LOGPROBS)
    result = await SelfConsistency(n=8, weighting="logprob").run("q", backend=backend)
    assert backend.requests[0].logprobs
    assert result.answer == "42"  # mean probability 0.95 x 3 outweighs 0.4 x 4


async def test_deepconf_says_how_the_weighted_vote_ended() -> None:
    result = await DeepConf(n=8, keep_percent=50).run(
        "q", backend=ScriptedBackend(list(WRONG_BUT_UNSURE), capabilities=LOGPROBS)
    )
    assert result.stop_detail.startswith("42 holds ") and "of the 4 most confident of 8 traces" in result.stop_detail


async def test_a_traced_deepconf_run_replays_to_the_same_vote(tmp_path: Any) -> None:
    from thinkloop.runtime.trace import replay

    path = tmp_path / "run.jsonl"
    first = await DeepConf(n=8, keep_percent=50).run(
        "q", backend=ScriptedBackend(list(WRONG_BUT_UNSURE), capabilities=LOGPROBS), trace_path=path
    )
    again = await DeepConf(n=8, keep_percent=50).run("q", backend=replay(path, capabilities=LOGPROBS))
    assert (again.answer, again.votes) == (first.answer, first.votes) == ("42", {"42": 3, "41": 1})
    assert again.data["confidences"] == first.data["confidences"]  # the logprobs came back from the trace
