"""The reasoning graph: path to an answer, pruned branches, depth, and lossless node-link and GraphML files."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from itertools import pairwise
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from thinkloop import ChatRequest, Choice, Completion, Node, ReasoningGraph, Usage

KINDS = ["generate", "critique", "revise", "expand", "evaluate", "vote", "verify", "select", "prune", "answer"]
STATUSES = ["running", "done", "pruned", "cancelled", "failed"]

# Text a model may well produce: any unicode (no surrogates), control characters and markup included.
texts = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 25) -> ReasoningGraph:
    """A random DAG of full nodes: node ``i``'s parents are earlier nodes, so there are no cycles."""
    size = draw(st.integers(1, max_nodes))
    graph = ReasoningGraph()
    for node_id in range(size):
        parents = draw(st.lists(st.integers(0, node_id - 1), max_size=3, unique=True)) if node_id else []
        fields: dict = {}
        if draw(st.booleans()):
            prompt = draw(texts)
            fields["request"] = ChatRequest.of(prompt or "q", max_tokens=draw(st.integers(1, 512)))
            reply = draw(texts)
            usage = Usage(prompt_tokens=draw(st.integers(0, 999)), completion_tokens=draw(st.integers(0, 999)))
            fields["completion"] = Completion(choices=(Choice(text=reply, finish_reason="stop"),), usage=usage)
            fields["usage"] = usage
            fields["text"] = reply
            fields["latency_s"] = draw(st.floats(0, 100))
        else:
            fields["data"] = draw(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3))
        graph.put(
            Node(
                id=node_id,
                kind=draw(st.sampled_from(KINDS)) if node_id else "question",
                parents=tuple(parents),
                status=draw(st.sampled_from(STATUSES)),
                strategy=draw(st.none() | st.sampled_from(["cot", "sc", "tree"])),
                answer=draw(st.none() | texts),
                score=draw(st.none() | st.floats(0, 1)),
                depth=draw(st.integers(0, 50)),
                error=draw(st.none() | texts),
                **fields,
            )
        )
    return graph


def _longest_path(graph: ReasoningGraph) -> int:
    """Longest chain in edges, computed independently of networkx (ids are a topological order)."""
    longest: dict[int, int] = {}
    for node in graph.nodes():
        longest[node.id] = max((longest[p] + 1 for p in node.parents), default=0)
    return max(longest.values(), default=0)


@settings(max_examples=60, deadline=None)
@given(graph=dags())
def test_path_to_follows_first_parents_from_a_root(graph: ReasoningGraph):
    for node in graph.nodes():
        path = graph.path_to(node.id)
        assert path[0].parents == ()  # starts at a root
        assert path[-1] == node
        for before, after in pairwise(path):
            assert after.parents[0] == before.id
            assert graph.nx.has_edge(before.id, after.id)


@settings(max_examples=60, deadline=None)
@given(graph=dags())
def test_depth_is_the_longest_chain_and_pruned_lists_pruned_nodes(graph: ReasoningGraph):
    assert graph.depth() == _longest_path(graph)
    assert graph.pruned() == [n for n in graph.nodes() if n.status == "pruned"]
    assert {n.id for n in graph.by_status("cancelled")} == {n.id for n in graph.nodes() if n.status == "cancelled"}


@settings(max_examples=60, deadline=None)
@given(graph=dags())
def test_node_link_round_trips_through_json(graph: ReasoningGraph):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "graph.json"
        graph.save_node_link(path)
        loaded = ReasoningGraph.from_node_link(json.loads(path.read_text()))
    assert loaded == graph
    assert [n.model_dump() for n in loaded.nodes()] == [n.model_dump() for n in graph.nodes()]


@settings(max_examples=60, deadline=None)
@given(graph=dags())
def test_graphml_round_trips(graph: ReasoningGraph):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "graph.graphml"
        graph.save_graphml(path)
        loaded = ReasoningGraph.load_graphml(path)
        flat = nx.read_graphml(str(path), node_type=int)
    assert loaded == graph
    # The scalar attributes are there for tools that read GraphML without thinkloop.
    for node in graph.nodes():
        assert flat.nodes[node.id]["kind"] == node.kind
        assert flat.nodes[node.id]["status"] == node.status


def test_node_link_document_is_read_by_networkx_itself():
    graph = ReasoningGraph()
    graph.put(Node(id=0, kind="question", status="done", text="q"))
    graph.put(Node(id=1, kind="generate", parents=(0,), status="done", answer="4", depth=1))
    plain = nx.node_link_graph(graph.to_node_link(), edges="links")
    assert list(plain.edges) == [(0, 1)]
    assert plain.nodes[1]["answer"] == "4"


def test_put_replaces_a_node_by_id_and_keeps_its_edges():
    graph = ReasoningGraph()
    graph.put(Node(id=0, kind="question", status="done"))
    graph.put(Node(id=1, kind="generate", parents=(0,), status="running"))
    graph.put(Node(id=1, kind="generate", parents=(0,), status="pruned", score=0.2))
    assert len(graph) == 2
    assert graph.node(1).status == "pruned"
    assert graph.pruned() == [graph.node(1)]
    assert list(graph.nx.edges) == [(0, 1)]


def test_edges_are_read_off_parents_and_an_edge_once_made_stays():
    graph = ReasoningGraph()
    for node in (
        Node(id=0, kind="question"),
        Node(id=1, kind="generate", parents=(0,)),
        Node(id=2, kind="generate", parents=(0,)),
        Node(id=3, kind="vote", parents=(2, 1)),
    ):
        graph.put(node)
    assert graph.edges() == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert list(graph.nx.predecessors(3)) == [2, 1]  # in the order they were made
    graph.put(Node(id=3, kind="vote", parents=(1,)))  # a newer version under other parents: (2, 3) stays
    graph.add_edge(1, 2)  # one no node's parents name
    assert graph.edges() == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert graph.children(1) == [3, 2] and graph.children(3) == []
    assert set(graph.nx.edges) == set(graph.edges())
    again = ReasoningGraph.from_node_link(json.loads(json.dumps(graph.to_node_link())))
    assert again == graph and again.edges() == graph.edges()


def test_a_merge_node_follows_its_first_parent():
    graph = ReasoningGraph()
    graph.put(Node(id=0, kind="question"))
    graph.put(Node(id=1, kind="generate", parents=(0,)))
    graph.put(Node(id=2, kind="generate", parents=(0,)))
    graph.put(Node(id=3, kind="critique", parents=(2,)))
    graph.put(Node(id=4, kind="vote", parents=(3, 1)))
    assert [n.id for n in graph.path_to(4)] == [0, 2, 3, 4]
    assert graph.depth() == 3


def test_an_empty_graph_has_depth_zero_and_unequal_types_do_not_compare():
    assert ReasoningGraph().depth() == 0
    assert ReasoningGraph() == ReasoningGraph()
    assert ReasoningGraph() != object()
    with pytest.raises(TypeError):
        hash(ReasoningGraph())


@pytest.mark.anyio
async def test_a_call_of_an_unknown_node_kind_is_refused_with_the_kinds_named_before_it_reserves() -> None:
    from thinkloop import Budget, Engine, Outcome, RunContext, ScriptedBackend, Strategy

    seen: dict[str, object] = {}

    class Misnamed(Strategy):
        name = "misnamed"

        async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
            with pytest.raises(ValueError, match=r"unknown node kind 'generat'.*generate") as raised:
                await ctx.call(ChatRequest.of("q", max_tokens=8), parents=[parent], kind="generat")  # type: ignore[arg-type]
            seen["error"], seen["in_flight"] = raised.value, ctx.ledger.in_flight()
            return Outcome(candidate=None, stop_reason="completed")

    result = await Engine(ScriptedBackend(lambda request: "4")).run(Misnamed(), "q", budget=Budget(tokens=100))
    assert seen["in_flight"] is False and result.usage.calls == 0 and result.spent["calls"] == 0
    assert [n.kind for n in result.graph.nodes()] == ["question"]  # nothing recorded for a call never made


def test_a_new_version_of_a_node_is_a_validated_copy_and_leaves_the_original_alone() -> None:
    running = Node(id=3, kind="generate", parents=(0,), depth=1, started_at=5.0, strategy="cot")
    done = running.model_copy(update={"status": "done", "text": "Answer: 42", "answer": "42", "latency_s": 0.25})
    assert (running.status, running.text) == ("running", None)
    assert Node.model_validate_json(done.model_dump_json()) == done
    with pytest.raises(dataclasses.FrozenInstanceError):  # frozen: a recorded version never changes
        done.status = "pruned"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="status"):  # the new values are checked, as a new node's are
        running.model_copy(update={"status": "finished"})
    with pytest.raises(ValidationError, match="colour"):
        running.model_copy(update={"colour": "red"})
