"""Replay is exact: runs whose course depended on timing, branches later pruned, and a judge on a second
backend all come back the same from the trace, with no live call (issue 16, item 2)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import anyio
import pytest

from support import AcceptAnswer
from thinkloop import (
    BestOfN,
    Capabilities,
    ChainOfThought,
    ChatRequest,
    LLMJudge,
    ScriptedBackend,
    SelfConsistency,
    TreeSearch,
)
from thinkloop.runtime.graph import ReasoningGraph
from thinkloop.runtime.trace import replay
from thinkloop.verifiers.judge import JUDGE_SYSTEM

pytestmark = pytest.mark.anyio

CONCURRENT = Capabilities(honours_n=False)


def jittery(seed: int, answers: list[str]) -> ScriptedBackend:
    """Each call answers one of ``answers`` after a random pause, so which reply lands first depends on timing."""
    rng = random.Random(seed)

    async def reply(request: ChatRequest) -> str:
        answer, pause = rng.choice(answers), rng.uniform(0, 0.01)
        await anyio.sleep(pause)
        return f"Thinking. Answer: {answer}"

    return ScriptedBackend(reply, name="jittery", capabilities=CONCURRENT)


def shape(graph: ReasoningGraph) -> Counter[tuple[object, ...]]:
    return Counter((n.kind, n.status, n.text, n.answer) for n in graph.nodes())


@pytest.mark.parametrize("seed", range(30))
async def test_adaptive_self_consistency_replays_its_early_stop(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "run.jsonl"
    strategy = SelfConsistency(n=8, adaptive=True, parallel=3, max_tokens=32)
    original = await strategy.run("q", backend=jittery(seed, ["4", "4", "5"]), trace_path=path)
    replayed = await strategy.run("q", backend=replay(path, strict=True, capabilities=CONCURRENT))
    assert replayed.votes == original.votes
    assert replayed.answers == original.answers  # the same samples, in the order they were voted
    assert (replayed.answer, replayed.stop_reason) == (original.answer, original.stop_reason)


@pytest.mark.parametrize("seed", range(10))
async def test_best_of_n_replays_which_candidate_was_accepted_first(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "run.jsonl"
    strategy = BestOfN(n=6, max_tokens=32)
    verifier = AcceptAnswer("2")
    original = await strategy.run("q", backend=jittery(seed, ["1", "2", "3"]), verifier=verifier, trace_path=path)
    replayed = await strategy.run(
        "q", backend=replay(path, strict=True, capabilities=CONCURRENT), verifier=AcceptAnswer("2")
    )
    assert (replayed.answer, replayed.stop_reason) == (original.answer, original.stop_reason)
    assert replayed.answers == original.answers


async def test_tree_search_replays_its_pruned_branches(tmp_path: Path) -> None:
    """Pruned thoughts were still called: their completions are served again, so the search takes the same
    path (the record used to leave them out, and the replay served the wrong reply to the next call)."""
    path = tmp_path / "run.jsonl"
    values = iter(["SCORE: 1", "SCORE: 9", "SCORE: 2", "SCORE: 8", "SCORE: 1", "SCORE: 7"] * 20)

    def reply(request: ChatRequest) -> str:
        if "Partial solution" in request.messages[-1].content:
            return next(values)
        return f"Step {len(request.messages)}. Answer: {len(request.messages[-1].content) % 5}"

    backend = ScriptedBackend(reply, name="tree", capabilities=CONCURRENT)
    strategy = TreeSearch(mode="beam", branching=2, beam_width=1, max_depth=2, temperature=0.0)
    original = await strategy.run("q", backend=backend, trace_path=path)
    assert original.graph.pruned(), "the search pruned nothing: the test needs pruned branches"
    replayed = await strategy.run("q", backend=replay(path, strict=True, capabilities=CONCURRENT))
    assert replayed.answer == original.answer
    assert shape(replayed.graph) == shape(original.graph)


async def test_a_judge_on_a_second_backend_is_replayed_not_called(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    judge_calls = 0

    def judging(request: ChatRequest) -> str:
        nonlocal judge_calls
        judge_calls += 1
        accepted = "Proposed final answer: 3" in request.messages[-1].content
        return f"VERDICT: {'CORRECT' if accepted else 'INCORRECT'}\nSCORE: {0.9 if accepted else 0.1}"

    counter = iter(range(1, 100))
    model = ScriptedBackend(lambda request: f"Answer: {next(counter)}", name="model")
    judge = LLMJudge(backend=ScriptedBackend(judging, name="judge"))
    original = await ChainOfThought(max_rounds=4).run("q", backend=model, verifier=judge, trace_path=path)
    assert original.answer == "3" and judge_calls == 3
    replayed = await ChainOfThought(max_rounds=4).run("q", backend=replay(path, strict=True), verifier=judge)
    assert judge_calls == 3  # no live call during the replay
    assert replayed.answer == "3" and replayed.graph == original.graph
    assert JUDGE_SYSTEM  # the judge's own prompt was what the record matched
