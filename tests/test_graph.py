"""The reasoning graph: path to an answer, pruned branches, depth, and lossless node-link and GraphML files."""

from __future__ import annotations

import json
import tempfile
from itertools import pairwise
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkloop import ChatRequest, Choice, Completion, Node, ReasoningGraph, Usage
from thinkloop.runtime.graph import call_node, evolve, share_field_sets

KINDS = ["generate", "critique", "revise", "expand", "evaluate", "vote", "verify", "select", "prune", "answer"]
STATUSES = ["running", "done", "pruned", "cancelled", "failed"]

# Text a model may well produce: any unicode (no surrogates), control characters and markup included.
texts = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
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
    for node in (Node(id=0, kind="question"), Node(id=1, kind="generate", parents=(0,)),
                 Node(id=2, kind="generate", parents=(0,)), Node(id=3, kind="vote", parents=(2, 1))):
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


_REQUEST = ChatRequest.of("What is 6 * 7?", system="Be careful.", max_tokens=64)


@given(
    st.integers(0, 10**6), st.sampled_from(["generate", "critique", "expand", "vote"]),
    st.lists(st.integers(0, 100), max_size=3).map(tuple), st.integers(0, 50),
    st.floats(0, 2e9, allow_nan=False), st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)),
)
def test_a_call_node_built_on_the_hot_path_equals_a_validated_node(
    node_id: int, kind: str, parents: tuple[int, ...], depth: int, started_at: float, strategy: str | None,
    data: dict | None,
) -> None:
    fast = call_node(node_id, kind, parents, depth, started_at, _REQUEST, strategy, data)  # type: ignore[arg-type]
    checked = Node(
        id=node_id, kind=kind, parents=parents, status="running", depth=depth, started_at=started_at,
        request=_REQUEST, strategy=strategy, data=data,
    )
    assert fast == checked
    assert fast.model_dump() == checked.model_dump()
    assert Node.model_validate_json(fast.model_dump_json()) == checked
    assert set(fast.__dict__) == set(Node.model_fields)  # every field present, as validation would make it


def test_a_call_node_of_an_unknown_kind_is_refused_with_the_kinds_named() -> None:
    with pytest.raises(ValueError, match=r"unknown node kind 'generat'.*generate"):
        call_node(1, "generat", (0,), 1, 0.0, _REQUEST, None, None)  # type: ignore[arg-type]


def test_evolve_is_model_copy_with_an_update_and_leaves_the_original_alone() -> None:
    running = call_node(3, "generate", (0,), 1, 5.0, _REQUEST, "cot", None)
    changes = {"status": "done", "text": "Answer: 42", "answer": "42", "latency_s": 0.25}
    done = evolve(running, dict(changes))
    assert done == running.model_copy(update=changes)
    assert done.model_fields_set == running.model_copy(update=changes).model_fields_set
    assert running.status == "running" and running.text is None
    # A later model_copy of a node built on the hot path leaves the set other nodes share untouched.
    scored = done.model_copy(update={"score": 0.5})
    assert "score" in scored.model_fields_set and "score" not in done.model_fields_set
    assert "score" not in call_node(4, "generate", (3,), 2, 6.0, _REQUEST, None, None).model_fields_set


def _completion(text: str, *, with_model: bool) -> Completion:
    extra = {"model": "m"} if with_model else {}
    return Completion(
        choices=(Choice(text=text, finish_reason="stop"),), usage=Usage(prompt_tokens=3, completion_tokens=2), **extra
    )


def test_completions_the_graph_keeps_share_equal_field_sets_and_read_the_same() -> None:
    first, second, other = (
        _completion("a", with_model=True), _completion("b", with_model=True), _completion("c", with_model=False)
    )
    before = [(c.model_fields_set, c.model_dump(exclude_unset=True)) for c in (first, second, other)]
    for completion in (first, second, other):
        share_field_sets(completion)
    after = [(c.model_fields_set, c.model_dump(exclude_unset=True)) for c in (first, second, other)]
    assert after == before  # nothing a reader can see changed
    # Equal sets are one object now (what spares the garbage collector); unequal ones are not merged.
    assert first.model_fields_set is second.model_fields_set
    assert first.usage.model_fields_set is second.usage.model_fields_set
    assert first.choices[0].model_fields_set is second.choices[0].model_fields_set
    assert other.model_fields_set is not first.model_fields_set and "model" not in other.model_fields_set
    # A copy with an update gets a set of its own; the shared one is left alone.
    renamed = first.model_copy(update={"model": "n"})
    copied = second.model_copy(update={"latency_s": 1.0})
    assert "latency_s" in copied.model_fields_set and "latency_s" not in first.model_fields_set
    assert renamed.model_fields_set == first.model_fields_set


@pytest.mark.anyio
async def test_a_run_keeps_one_field_set_per_shape_not_one_per_call() -> None:
    from thinkloop import Budget, Capabilities, Engine, ScriptedBackend, SelfConsistency

    one_at_a_time = Capabilities(honours_n=False, prompt_overhead_tokens=0)  # six calls, six completions
    result = await Engine(ScriptedBackend(lambda request: "Answer: 4", capabilities=one_at_a_time)).run(
        SelfConsistency(n=6), "2+2?", budget=Budget(tokens=100_000)
    )
    completions = [node.completion for node in result.graph.nodes() if node.completion is not None]
    assert len(completions) >= 6
    assert len({id(c.model_fields_set) for c in completions}) == 1
    assert len({id(choice.model_fields_set) for c in completions for choice in c.choices}) == 1
