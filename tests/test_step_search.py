"""Step rewards (judge, verifier, a vLLM-style PRM server behind a mock transport) and the reward-guided
searches that use them: the beam's pruning, DVTS's independent subtrees, the particle filter's resampling."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.exceptions import BackendError, ConfigurationError
from thinkloop.runtime.budget import Budget
from thinkloop.runtime.verdict import Verdict
from thinkloop.strategies.beam import DVTS, BeamSearch
from thinkloop.strategies.particles import ParticleFilter, resample, weights
from thinkloop.strategies.registry import build_strategy, needs_verifier
from thinkloop.types import ChatRequest
from thinkloop.verifiers.step_rewards import (
    JudgeStepReward,
    RewardModelServer,
    VerifierStepReward,
    aggregate,
)

pytestmark = pytest.mark.anyio


class World:
    """A scripted model that writes one step per call: first steps come from ``first`` in turn; a path
    whose last step says "good" ends with the right answer, one that says "bad" with a wrong one."""

    def __init__(self, first: Sequence[str]) -> None:
        self.first = list(first)
        self.drawn = 0
        self.continued: list[str] = []

    def __call__(self, request: ChatRequest) -> str:
        last = request.messages[-1]
        assert request.stop == ("\n\n",)
        if last.role == "user":
            step = self.first[self.drawn % len(self.first)]
            self.drawn += 1
            return step
        self.continued.append(last.content)
        assert last.content.endswith("\n\n")  # the path so far, then the delimiter: write the next step
        return "So Answer: 42" if "good" in last.content.split("\n\n")[-2] else "So Answer: 13"


class Rewards:
    """A step reward from the text: 'good' 0.9, 'bad' 0.1, the right answer 1.0, a wrong one 0.0."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    async def score_steps(
        self, question: str, steps: Sequence[str], ctx: Any = None, *, parent: Any = None
    ) -> list[float]:
        self.asked.append(tuple(steps))
        table = {"good": 0.9, "bad": 0.1, "42": 1.0, "13": 0.0}
        return [next((v for k, v in table.items() if k in s), 0.5) for s in steps]


def pruned(result: Any) -> list[Any]:
    return [n for n in result.graph.nodes() if n.status == "pruned"]


async def test_beam_keeps_the_best_n_over_width_and_never_grows_a_pruned_path() -> None:
    world = World(["bad one", "good one", "bad two", "good two"])
    backend = ScriptedBackend(world)
    result = await BeamSearch(n=4, beam_width=2, step_reward=Rewards()).run("q", backend=backend)
    assert result.answer == "42"
    cut = pruned(result)
    assert sorted(n.text for n in cut) == ["bad one", "bad two"]
    assert all("outside the beam of 2" in n.data["pruned"] for n in cut)
    assert world.continued and not any("bad" in c for c in world.continued)
    assert sorted(r.n for r in backend.requests) == [2, 2, 4]  # 4 first steps; each kept path grown 2 ways
    assert result.data["finished"] == 4 and result.data["votes"] == {"42": 4}
    assert result.stop_detail == "42 chosen by the reward-weighted vote over 4 finished paths"


async def test_dvts_runs_independent_greedy_subtrees() -> None:
    world = World(["bad a", "good a", "good b", "bad b"])
    result = await DVTS(n=4, beam_width=2, step_reward=Rewards()).run("q", backend=ScriptedBackend(world))
    assert result.data["subtrees"] == 2
    assert result.answer == "42"
    cut = pruned(result)
    # each subtree kept its own best first step and its best finished child; the rest pruned within it
    assert sorted(n.text for n in cut if n.text and "Answer" not in n.text) == ["bad a", "bad b"]
    assert all("below its best" in n.data["pruned"] for n in cut)
    assert result.data["finished"] == 2


async def test_particles_resample_by_reward_and_let_poor_paths_die() -> None:
    world = World(["bad one", "good one", "bad two", "good two"])
    backend = ScriptedBackend(world)
    result = await ParticleFilter(n=4, resample_temperature=0.05, step_reward=Rewards()).run("q", backend=backend)
    assert result.answer == "42"
    select = next(n for n in result.graph.nodes() if n.kind == "select" and n.data.get("round") == 1)
    good = {n.id for n in result.graph.nodes() if n.text in ("good one", "good two")}
    assert {int(k) for k in select.data["copies"]} == good  # only the good particles survive ...
    assert sorted(select.data["copies"].values()) == [2, 2]  # ... each copied twice (systematic)
    assert sorted(n.text for n in pruned(result) if "not resampled" in n.data["pruned"]) == ["bad one", "bad two"]
    # each surviving particle was continued 2 ways in one request
    assert sorted(r.n for r in backend.requests) == [2, 2, 4]


def test_systematic_resampling_copies_each_particle_floor_or_ceil_of_its_share() -> None:
    @given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12), st.integers(1, 32), st.integers(0, 1000))
    def check(rewards: list[float], k: int, seed: int) -> None:
        probabilities = weights(rewards, 0.3)
        drawn = resample(probabilities, k, random.Random(seed))
        assert len(drawn) == k
        for index, p in enumerate(probabilities):
            copies = drawn.count(index)
            assert int(k * p) - 1 <= copies <= int(k * p) + 2  # floor/ceil, with float slack at the edges

    check()


async def test_searches_stop_on_budget_with_an_answer_in_hand() -> None:
    world = World(["good one", "good two", "bad", "bad"])
    result = await BeamSearch(n=4, beam_width=2, step_reward=Rewards(), max_tokens=8).run(
        "q", backend=ScriptedBackend(world), budget=Budget(calls=1)
    )
    assert result.stop_reason == "budget"
    assert result.answer is None and result.text in ("good one", "good two")  # the best open path, shown


async def test_judge_step_reward_asks_once_per_new_prefix() -> None:
    replies: list[ChatRequest] = []

    def judge(request: ChatRequest) -> str:
        replies.append(request)
        return "SCORE: 8" if "first" in request.messages[-1].content.split("Latest step:")[-1] else "no idea"

    from thinkloop.runtime.budget import BudgetLedger
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.trace import Trace

    ctx = RunContext(
        backend=ScriptedBackend(judge), ledger=BudgetLedger(Budget()), trace=Trace(), question="q", run_id="r"
    )
    root = ctx.record("question", (), text="q")
    reward = JudgeStepReward()
    assert await reward.score_steps("q", ["first"], ctx, parent=root.id) == [0.8]
    assert await reward.score_steps("q", ["first", "second"], ctx, parent=root.id) == [0.8, 0.0]
    assert len(replies) == 2  # "first" was not judged again
    assert all(n.kind == "evaluate" for n in ctx.graph.nodes() if n.kind != "question")


async def test_verifier_step_reward_scores_each_prefix() -> None:
    class Halves:
        async def verify(self, question: str, candidate: Any, ctx: Any = None) -> Verdict:
            return Verdict.reject(score=0.5) if candidate.answer is None else Verdict.accept()

    reward = VerifierStepReward(Halves())
    assert await reward.score_steps("q", ["think", "Answer: 3"]) == [0.5, 1.0]
    assert aggregate([0.5, 1.0], "min") == 0.5 and aggregate([0.5, 1.0], "prod") == 0.5
    assert aggregate([0.5, 1.0], "mean") == 0.75 and aggregate([0.5, 1.0]) == 1.0


def prm_server(rows: Any, status: int = 200) -> tuple[RewardModelServer, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/pooling"  # at the root, beside /v1, as vLLM serves it
        assert request.headers["authorization"] == "Bearer sk-prm-secret"
        body = json.loads(request.content)
        sent.append(body)
        data = rows(body) if callable(rows) else rows
        return httpx2.Response(
            status,
            json={
                "id": "pool-1",
                "object": "list",
                "model": body["model"],
                "data": [{"index": 0, "object": "pooling", "data": data}],
                "usage": {"prompt_tokens": 31, "total_tokens": 31},
            },
        )

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return RewardModelServer(
        "http://prm.test/v1", "Qwen/Qwen2.5-Math-PRM-7B", api_key="sk-prm-secret", http_client=client
    ), sent


async def test_reward_server_request_shape_and_parsing() -> None:
    server, sent = prm_server([[0.1, 0.9], [0.7, 0.3]])
    assert await server.score_steps("What is 6*7?", ["6*7 = 42", "Answer: 42"]) == [0.9, 0.3]
    assert sent == [
        {
            "model": "Qwen/Qwen2.5-Math-PRM-7B",
            "messages": [
                {
                    "role": "system",
                    "content": "Please reason step by step, and put your final answer within \\boxed{}.",
                },
                {"role": "user", "content": "What is 6*7?"},
                {"role": "assistant", "content": "6*7 = 42<extra_0>Answer: 42<extra_0>"},
            ],
        }
    ]
    assert await server.score_steps("What is 6*7?", ["6*7 = 42"]) == [0.9]  # a known prefix: no new request
    assert len(sent) == 1
    assert "sk-prm-secret" not in repr(server)


async def test_reward_server_replies_that_do_not_fit_are_errors() -> None:
    server, _ = prm_server([[0.1, 0.9]])
    with pytest.raises(BackendError, match="scored 1 steps of 2"):
        await server.score_steps("q", ["a", "b"])
    server, _ = prm_server([[0.1, 1.7]])
    with pytest.raises(BackendError, match="not a probability"):
        await server.score_steps("q", ["a"])
    server, _ = prm_server({"error": "overloaded"}, status=503)
    with pytest.raises(BackendError, match="answered 503") as caught:
        await server.score_steps("q", ["a"])
    assert caught.value.retryable


async def test_beam_guided_by_the_reward_server() -> None:
    def rows(body: dict[str, Any]) -> list[list[float]]:
        steps = body["messages"][-1]["content"].split("<extra_0>")[:-1]
        return [[0.0, 0.95] if ("good" in s or "42" in s) else [1.0, 0.05] for s in steps]

    server, _ = prm_server(rows)
    world = World(["bad one", "good one", "bad two", "good two"])
    result = await BeamSearch(n=4, beam_width=2, step_reward=server).run("q", backend=ScriptedBackend(world))
    assert result.answer == "42"
    assert not any("bad" in c for c in world.continued)
    evaluated = [n for n in result.graph.nodes() if n.kind == "evaluate"]
    assert evaluated and all(n.data["prm_tokens"] == 31 for n in evaluated)


def test_registry_builds_the_searches_and_checks_their_options() -> None:
    assert isinstance(build_strategy("beam:n=8,beam_width=2"), BeamSearch)
    assert isinstance(build_strategy('dvts:delimiter="\\n"'), DVTS)
    assert build_strategy('dvts:delimiter="\\n"').config.delimiter == "\n"
    assert isinstance(build_strategy("particles:seed=3"), ParticleFilter)
    assert needs_verifier(build_strategy("particles:reward=verifier")) == "reward=verifier"
    with pytest.raises(ConfigurationError, match="prm_url and prm_model"):
        build_strategy("beam:reward=server")
    with pytest.raises(ConfigurationError, match="step_reward"):
        BeamSearch(reward="function")


async def test_particle_gibbs_keeps_the_reference_lineage_in_the_next_sweep() -> None:
    world = World(["bad one", "good one", "bad two", "good two"])
    backend = ScriptedBackend(world)
    result = await ParticleFilter(n=3, sweeps=2, resample_temperature=0.05, step_reward=Rewards()).run(
        "q", backend=backend
    )
    assert result.answer == "42" and result.data["sweeps"] == 2
    firsts = [r.n for r in backend.requests if r.messages[-1].role == "user"]
    assert firsts == [3, 2]  # the second sweep draws n - 1 first steps: the reference holds the last place
    second = [n for n in result.graph.nodes() if n.kind == "select" and n.data.get("sweep") == 2]
    assert second and result.data["finished"] == 6
    assert len(second[0].data["weights"]) == 3  # two fresh first steps and the reference's
    assert not any(n.text == "good one" and n.status == "pruned" for n in result.graph.nodes())


async def test_the_viewer_draws_a_beam_search_with_its_pruning_reasons_and_answer_path(tmp_path: Any) -> None:
    from thinkloop.runtime.trace import load_trace
    from thinkloop.view.document import build_document

    world = World(["bad one", "good one", "bad two", "good two"])
    path = tmp_path / "beam.jsonl"
    result = await BeamSearch(n=4, beam_width=2, step_reward=Rewards()).run(
        "q", backend=ScriptedBackend(world), trace_path=path
    )
    (run,) = build_document(load_trace(path))["runs"]
    nodes = {n["id"]: n for n in run["nodes"]}
    reasons = sorted(n["data"]["pruned"] for n in nodes.values() if n["status"] == "pruned")
    assert reasons == ["reward 0.100 outside the beam of 2"] * 2
    assert run["answer"] == "42" and run["path"][-1] == run["answer_node"] == result.candidate.node_id
    assert any("good" in (nodes[i].get("text") or "") for i in run["path"])  # the path runs through a kept step


@pytest.mark.parametrize("spec", ["particles:n=4,resample_temperature=0.3,seed=5", "dvts:n=4,beam_width=2"])
async def test_a_traced_search_replays_to_the_same_decisions(tmp_path: Any, spec: str) -> None:
    from thinkloop.runtime.trace import replay

    def strategy() -> Any:
        built = build_strategy(spec)
        return type(built)(**built.config.model_dump(exclude_defaults=True), step_reward=Rewards())

    world = World(["bad one", "good one", "bad two", "good two"])
    path = tmp_path / "run.jsonl"
    first = await strategy().run("q", backend=ScriptedBackend(world), trace_path=path)
    again = await strategy().run("q", backend=replay(path))  # matched by request: trio reorders tasks
    assert first.answer == "42"
    assert (again.answer, again.text, again.usage) == (first.answer, first.text, first.usage)
    pruned_first = sorted(n.text or "" for n in first.graph.nodes() if n.status == "pruned")
    assert sorted(n.text or "" for n in again.graph.nodes() if n.status == "pruned") == pruned_first
