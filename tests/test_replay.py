"""ReplayBackend: a run re-run from its trace gets the same completions, so the same answer and graph."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

import pytest

from thinkloop import Budget, Capabilities, ConfigurationError, ReplayMismatch, ScriptedBackend
from thinkloop.runtime.graph import ReasoningGraph
from thinkloop.runtime.trace import load_trace, replay
from thinkloop.strategies.base import Strategy
from thinkloop.strategies.cot import ChainOfThought, Direct
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.types import ChatRequest
from thinkloop.verifiers import LLMJudge, MathAnswerVerifier
from thinkloop.verifiers.judge import JUDGE_SYSTEM

SEQUENTIAL = Capabilities(honours_n=False, prompt_overhead_tokens=0)


def counting_backend(*, capabilities: Capabilities | None = None) -> ScriptedBackend:
    """Replies that differ per call (answers 1, 2, 3, ...), so a replay that served them out of order would
    show; judge requests get a verdict that accepts only the answer 3."""
    counter = itertools.count(1)

    def reply(request: ChatRequest) -> str:
        if request.messages[0].content == JUDGE_SYSTEM:
            good = "Proposed final answer: 3\n" in request.messages[-1].content
            return f"Checked.\nVERDICT: {'CORRECT' if good else 'INCORRECT'}\nSCORE: {0.9 if good else 0.1}"
        return f"Working it out. Answer: {next(counter)}"

    return ScriptedBackend(reply, name="scripted-model", capabilities=capabilities)


def shape(graph: ReasoningGraph) -> Counter[tuple[object, ...]]:
    """The graph without node ids: what each node is and says, and how many edges there are."""
    nodes = Counter((n.kind, n.status, n.text, n.answer, n.depth) for n in graph.nodes())
    nodes[("edges",)] = graph.nx.number_of_edges()
    return nodes


CASES = [
    pytest.param(lambda: ChainOfThought(max_rounds=4), MathAnswerVerifier("3"), None, True, id="cot-rounds"),
    pytest.param(lambda: ChainOfThought(max_rounds=4), LLMJudge(), None, True, id="cot-llm-judge"),
    pytest.param(lambda: SelfConsistency(n=5), None, None, True, id="sc-one-request-with-n"),
    pytest.param(lambda: SelfConsistency(n=5), None, SEQUENTIAL, False, id="sc-concurrent-requests"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("make", "verifier", "capabilities", "deterministic"), CASES)
async def test_a_replayed_run_gives_the_same_answer_and_graph(
    tmp_path: Path,
    make: type[Strategy],
    verifier: object,
    capabilities: Capabilities | None,
    deterministic: bool,
) -> None:
    trace_path = tmp_path / "run.jsonl"
    backend = counting_backend(capabilities=capabilities)
    original = await make().run("What is 1 + 2?", backend=backend, verifier=verifier, trace_path=trace_path)

    replayer = replay(trace_path, strict=True, capabilities=capabilities)
    replayed = await make().run("What is 1 + 2?", backend=replayer, verifier=verifier)

    assert replayed.error is None
    assert replayed.answer == original.answer is not None
    assert replayed.stop_reason == original.stop_reason
    assert replayed.model == "scripted-model"
    assert replayed.usage == original.usage
    assert replayer.remaining == 0
    assert shape(replayed.graph) == shape(original.graph)
    if deterministic:
        assert replayed.graph == original.graph
        assert [n.kind for n in replayed.answer_path()] == [n.kind for n in original.answer_path()]


@pytest.mark.anyio
async def test_replay_from_live_events_and_inferred_n() -> None:
    events: list[object] = []
    original = await SelfConsistency(n=3).run("q", backend=counting_backend(), sinks=[events.append])
    replayer = replay(events)
    assert replayer.capabilities.honours_n  # the recorded run sent one request with n=3
    replayed = await SelfConsistency(n=3).run("q", backend=replayer)
    assert replayed.answer == original.answer
    assert replayed.graph == original.graph


@pytest.mark.anyio
async def test_more_calls_than_the_trace_recorded_is_a_clear_error(tmp_path: Path) -> None:
    trace_path = tmp_path / "run.jsonl"
    await ChainOfThought(max_rounds=1).run(
        "q", backend=counting_backend(), verifier=MathAnswerVerifier("3"), trace_path=trace_path
    )
    replayed = await ChainOfThought(max_rounds=3).run("q", backend=replay(trace_path), verifier=MathAnswerVerifier("3"))
    assert replayed.stop_reason == "error"
    assert replayed.error is not None
    assert re.search(re.escape("holds 1 completed calls; the run asked for call 2"), replayed.error)
    assert replayed.answer == "1"  # the best answer found before the trace ran out
    with pytest.raises(ReplayMismatch, match=re.escape("holds 1 completed calls; the run asked for call 2")):
        await ChainOfThought(max_rounds=3).run(
            "q", backend=replay(trace_path, strict=True), verifier=MathAnswerVerifier("3")
        )


@pytest.mark.anyio
async def test_strict_replay_refuses_a_different_request(tmp_path: Path) -> None:
    trace_path = tmp_path / "run.jsonl"
    await Direct().run("What is 1 + 2?", backend=counting_backend(), trace_path=trace_path)

    with pytest.raises(
        ReplayMismatch, match=re.escape("call 1 differs from every recorded request (next recorded: messages: recorded")
    ):
        await Direct().run("What is 2 + 2?", backend=replay(trace_path, strict=True))

    lenient = await Direct().run("What is 2 + 2?", backend=replay(trace_path))
    assert lenient.answer == "1"


@pytest.mark.anyio
async def test_a_trace_with_several_runs_needs_a_run_id(tmp_path: Path) -> None:
    trace_path = tmp_path / "runs.jsonl"
    first = await Direct().run("q1", backend=counting_backend(), trace_path=trace_path)
    second = await Direct().run("q2", backend=counting_backend(), trace_path=trace_path)
    with pytest.raises(ConfigurationError, match="holds 2 runs"):
        replay(trace_path)
    with pytest.raises(ConfigurationError, match="has no run 'nope'"):
        replay(trace_path, run_id="nope")
    replayed = await Direct().run("q2", backend=replay(trace_path, run_id=second.run_id, strict=True))
    assert replayed.graph == second.graph
    assert first.run_id != second.run_id


def test_an_empty_trace_is_a_configuration_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigurationError, match="holds no run"):
        replay(empty)


@pytest.mark.anyio
async def test_replay_keeps_failed_and_budget_stopped_calls_out(tmp_path: Path) -> None:
    """Only completed calls are served: a call the budget refused was never sent, so it has no completion."""
    trace_path = tmp_path / "run.jsonl"
    budget = Budget(calls=2)
    original = await ChainOfThought(max_rounds=5).run(
        "q", backend=counting_backend(), verifier=MathAnswerVerifier("9"), budget=budget, trace_path=trace_path
    )
    assert original.stop_reason == "budget"
    replayer = replay(trace_path, strict=True)
    assert len(replayer.calls) == 2
    assert sum(1 for e in load_trace(trace_path) if getattr(e, "kind", None) == "node") > 2
    replayed = await ChainOfThought(max_rounds=5).run(
        "q", backend=replayer, verifier=MathAnswerVerifier("9"), budget=budget
    )
    assert replayed.stop_reason == "budget"
    assert replayed.graph == original.graph
