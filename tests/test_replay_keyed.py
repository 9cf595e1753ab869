"""Replay keyed by the call's node (issue 25): concurrent identical requests map back to exactly the replies
they got, so the graph replays node for node (before: the right answers, but 43 of 90 graphs differed and a
two-branch tie replayed to another answer); a replay that cannot map a call exactly raises ReplayMismatch.
"""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from thinkloop import BackendError, Capabilities, ChatRequest, Direct, ScriptedBackend, SelfConsistency
from thinkloop.exceptions import ReplayMismatch
from thinkloop.runtime.graph import ReasoningGraph
from thinkloop.runtime.trace import load_trace, replay

pytestmark = pytest.mark.anyio

CONCURRENT = Capabilities(honours_n=False)


def by_node(graph: ReasoningGraph) -> dict[int, tuple[object, ...]]:
    return {n.id: (n.kind, n.status, n.parents, n.text, n.answer) for n in graph.nodes()}


def jittery(seed: int, answers: list[str]) -> ScriptedBackend:
    rng = random.Random(seed)

    async def reply(request: ChatRequest) -> str:
        answer, pause = rng.choice(answers), rng.uniform(0, 0.01)
        await anyio.sleep(pause)
        return f"Working {rng.random():.6f}. Answer: {answer}"

    return ScriptedBackend(reply, name="jittery", capabilities=CONCURRENT)


@pytest.mark.parametrize("seed", range(12))
async def test_concurrent_identical_requests_replay_node_for_node(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "run.jsonl"
    strategy = SelfConsistency(n=6, max_tokens=32)
    original = await strategy.run("q", backend=jittery(seed, ["4", "5", "6"]), trace_path=path)
    replayed = await strategy.run("q", backend=replay(path, strict=True, capabilities=CONCURRENT))
    assert by_node(replayed.graph) == by_node(original.graph)
    assert (replayed.answer, replayed.votes) == (original.answer, original.votes)


@pytest.mark.parametrize("seed", range(12))
async def test_a_two_branch_tie_replays_to_the_same_answer(tmp_path: Path, seed: int) -> None:
    """Two samples, two answers: the tie is broken by which branch is which, so the replay must give each
    branch its own reply, not the one that arrived first."""
    path = tmp_path / "run.jsonl"
    strategy = SelfConsistency(n=2, max_tokens=32)
    original = await strategy.run("q", backend=jittery(seed, ["7", "8"]), trace_path=path)
    replayed = await strategy.run("q", backend=replay(path, strict=True, capabilities=CONCURRENT))
    assert replayed.answer == original.answer
    assert by_node(replayed.graph) == by_node(original.graph)


async def test_a_retried_failure_replays_as_the_same_failure(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    calls = 0

    def flaky(request: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BackendError("the server went away", retryable=True, maybe_billed=True)
        return "Answer: 3"

    backend = ScriptedBackend(flaky, capabilities=Capabilities(honours_n=False))
    original = await Direct(max_tokens=16).run("q", backend=backend, trace_path=path)
    replayed = await Direct(max_tokens=16).run("q", backend=replay(path, strict=True))
    assert original.answer == replayed.answer == "3"
    assert by_node(replayed.graph) == by_node(original.graph)
    assert replayed.usage == original.usage


async def test_a_call_whose_recorded_request_differs_is_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    await Direct(max_tokens=16).run("q", backend=ScriptedBackend(["Answer: 3"]), trace_path=path)
    backend = replay(path, strict=True)
    with pytest.raises(ReplayMismatch, match="max_tokens"):
        await Direct(max_tokens=17).run("q", backend=backend)
    assert load_trace(path)
