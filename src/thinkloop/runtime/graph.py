"""The reasoning graph: every model call and every decision of a run, as a ``networkx.DiGraph``.

Each node is a :class:`Node` value (kept whole on the graph under the ``"node"`` attribute), with edges from
its parents. Users ask the graph for the path that led to the answer, the pruned branches and the depth,
and save it as node-link JSON or GraphML.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import TypeAdapter
from pydantic import dataclasses as pydantic_dataclasses

from thinkloop.runtime.failure import Failure
from thinkloop.types import ONE_PER_CALL, ChatRequest, Completion, Usage, ValueMethods, adapter_of

if TYPE_CHECKING:
    import networkx as nx


def _networkx() -> Any:
    """networkx costs ~100 ms to import: ``import thinkloop`` and ``thinkloop --help`` should not pay it."""
    import networkx

    return networkx


NodeKind = Literal[
    "question",
    "generate",
    "critique",
    "revise",
    "expand",
    "evaluate",
    "vote",
    "verify",
    "select",
    "prune",
    "backtrack",
    "answer",
    "decide",
]
"""``decide``: a strategy's choice about how much more to spend (``auto``), its reason in ``data["reason"]``."""
NodeStatus = Literal["running", "done", "pruned", "cancelled", "failed"]

_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold, even escaped."""


@pydantic_dataclasses.dataclass(frozen=True, slots=True, kw_only=True, config=ONE_PER_CALL)
class Node(ValueMethods):
    """One step of a run: a model call (``request``/``completion``) or a decision (``data``).

    A frozen, slotted pydantic dataclass (a run keeps one per call: see :class:`~thinkloop.types.ValueMethods`),
    validated when made, each newer version a validated ``model_copy(update=...)``. A retried call's tries are
    nodes of their own, ``data["attempt"]`` numbering the second and later ones.
    """

    id: int
    kind: NodeKind
    parents: tuple[int, ...] = ()
    status: NodeStatus = "running"
    strategy: str | None = None
    request: ChatRequest | None = None
    completion: Completion | None = None
    data: dict[str, Any] | None = None
    text: str | None = None
    answer: str | None = None
    usage: Usage | None = None
    latency_s: float | None = None
    started_at: float | None = None
    """Wall-clock time (Unix seconds) the node was recorded: for a call, when it was sent for."""
    score: float | None = None
    depth: int = 0
    error: str | None = None
    failure: Failure | None = None
    """Why a ``failed`` node failed, typed (``error`` is its message); absent in traces written before it."""


_ADAPTER: TypeAdapter[Node] = adapter_of(Node)

NODE_JSON = _ADAPTER.serializer
"""Node's serializer: ``to_json`` gives the bytes a trace line holds (``model_dump_json`` gives text, and its
Python wrapper cost as much as a third of the serialising, twice a call)."""


def new_node(values: dict[str, Any]) -> Node:
    """``Node(**values)``, validated the same way, without the dataclass ``__init__``'s Python layer around the
    validator: a call records a new node every time, and that layer was a quarter of its cost."""
    node: Node = _ADAPTER.validator.validate_python(values)
    return node


_KINDS: frozenset[str] = frozenset(get_args(NodeKind))


def check_kind(kind: str) -> None:
    """Refuse a node kind the trace could not read back, naming the kinds there are (a strategy picks it
    freely, so the runtime checks it before it reserves anything for a call)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown node kind {kind!r}: one of {', '.join(sorted(_KINDS))}")


def _untimed(nodes: list[Node]) -> list[Node]:
    return [n.model_copy(update={"started_at": None}) if n.started_at is not None else n for n in nodes]


class ReasoningGraph:
    """A run's graph of thoughts, as a ``networkx.DiGraph`` (:attr:`nx`) for analysis.

    Nodes are kept in a plain dict while the run grows them (every model call adds two versions of a node,
    and networkx's bookkeeping was the largest cost of a call), and edges are read off the nodes' parents
    (a tuple per edge kept beside them was one more object per call for the garbage collector); :attr:`nx`
    builds the ``networkx.DiGraph`` when asked for, and again only after the graph changed.
    """

    def __init__(self) -> None:
        self._nodes: dict[int, Node] = {}
        self._extra_edges: dict[tuple[int, int], None] = {}
        """Edges no node's parents name now: added with :meth:`add_edge`, or named by an earlier version."""
        self._nx: nx.DiGraph | None = None

    @property
    def nx(self) -> nx.DiGraph:
        """The graph as a ``networkx.DiGraph``: each node's :class:`Node` under the ``"node"`` attribute."""
        graph = self._nx
        if graph is None:
            graph = _networkx().DiGraph()
            graph.add_nodes_from((node_id, {"node": node}) for node_id, node in self._nodes.items())
            graph.add_edges_from(self._edge_keys())
            self._nx = graph
        return graph

    def __len__(self) -> int:
        return len(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReasoningGraph):
            return NotImplemented
        # When a node was recorded is not what it is: a replayed run grows an equal graph at another time.
        same_edges = self._edge_keys().keys() == other._edge_keys().keys()
        return same_edges and _untimed(self.nodes()) == _untimed(other.nodes())

    __hash__ = None  # type: ignore[assignment]

    def put(self, node: Node) -> None:
        """Add a node, or replace it with a newer version of itself (same id)."""
        previous = self._nodes.get(node.id)
        self._nodes[node.id] = node
        if previous is not None:
            if previous.parents == node.parents:
                if self._nx is not None:  # a new version of a node (done, pruned): its edges are in place
                    self._nx.nodes[node.id]["node"] = node
                return
            for parent in previous.parents:  # an edge, once made, stays
                self._extra_edges[(parent, node.id)] = None
        self._nx = None

    def add_edge(self, parent: int, child: int) -> None:
        """An edge between two recorded nodes that neither node's parents name."""
        self._extra_edges[(parent, child)] = None
        self._nx = None

    def _edge_keys(self) -> dict[tuple[int, int], None]:
        """Every edge, in the order it was made: each node's parents in the order nodes were first put, then
        the rest."""
        edges = {(parent, node_id): None for node_id, node in self._nodes.items() for parent in node.parents}
        edges.update(self._extra_edges)
        return edges

    def edges(self) -> list[tuple[int, int]]:
        return sorted(self._edge_keys())

    def children(self, node_id: int) -> list[int]:
        return [child for parent, child in self._edge_keys() if parent == node_id]

    def node(self, node_id: int) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KeyError(f"the graph has no node {node_id}") from None

    def nodes(self) -> list[Node]:
        return [self._nodes[node_id] for node_id in sorted(self._nodes)]

    def path_to(self, node_id: int) -> list[Node]:
        """The chain of first parents from the root to ``node_id``: how the run reached it."""
        path = [self.node(node_id)]
        while path[-1].parents:
            path.append(self.node(path[-1].parents[0]))
        return path[::-1]

    def by_status(self, status: NodeStatus) -> list[Node]:
        return [n for n in self.nodes() if n.status == status]

    def pruned(self) -> list[Node]:
        return self.by_status("pruned")

    def depth(self) -> int:
        """Longest chain of nodes from a root, counted in edges."""
        if len(self) == 0:
            return 0
        return _networkx().dag_longest_path_length(self.nx)

    def to_node_link(self) -> dict[str, Any]:
        """A JSON-able node-link document that :meth:`from_node_link` reads back losslessly."""
        return {
            "directed": True,
            "multigraph": False,  # networkx's node_link_graph reads a missing flag as a multigraph
            "graph": {},
            "nodes": [n.model_dump(mode="json", exclude_defaults=True) | {"id": n.id} for n in self.nodes()],
            "links": [{"source": s, "target": t} for s, t in self.edges()],
        }

    @classmethod
    def from_node_link(cls, document: dict[str, Any]) -> ReasoningGraph:
        graph = cls()
        for raw in document["nodes"]:
            graph.put(Node.model_validate(raw))
        for link in document["links"]:
            graph.add_edge(link["source"], link["target"])
        return graph

    def save_node_link(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_node_link(), indent=1))

    @classmethod
    def load_node_link(cls, path: str | Path) -> ReasoningGraph:
        return cls.from_node_link(json.loads(Path(path).read_text()))

    def save_graphml(self, path: str | Path) -> None:
        """GraphML holds scalars only: each node keeps its kind, status and score, plus its full JSON."""
        flat = _networkx().DiGraph()
        for node in self.nodes():
            flat.add_node(
                node.id,
                kind=node.kind,
                status=node.status,
                score=-1.0 if node.score is None else node.score,
                answer=_XML_UNSAFE.sub("\ufffd", node.answer or ""),
                # ASCII-only JSON: model text may hold characters XML 1.0 cannot carry (NUL, U+FFFE).
                json=json.dumps(node.model_dump(mode="json", exclude_defaults=True), ensure_ascii=True),
            )
        flat.add_edges_from(self.edges())
        _networkx().write_graphml(flat, str(path))

    @classmethod
    def load_graphml(cls, path: str | Path) -> ReasoningGraph:
        flat = _networkx().read_graphml(str(path), node_type=int)
        graph = cls()
        for _, data in flat.nodes(data=True):
            graph.put(Node.model_validate_json(data["json"]))
        for parent, child in flat.edges:
            graph.add_edge(parent, child)
        return graph
