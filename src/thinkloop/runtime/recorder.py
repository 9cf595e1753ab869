"""Recording a run: every node version goes on the graph and out to the trace, in one place.

A run's contexts (the outermost and every sub-strategy's) share one recorder: one graph, one trace, one
sequence of node ids.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import count
from typing import Any

from thinkloop.runtime.graph import Node, NodeKind, NodeStatus, ReasoningGraph, new_node
from thinkloop.runtime.trace import Trace
from thinkloop.types import ChatRequest


class Recorder:
    """Puts node versions on a run's graph and emits them to its trace."""

    def __init__(
        self, trace: Trace, run_id: str, graph: ReasoningGraph | None = None, ids: count[int] | None = None
    ) -> None:
        self.trace = trace
        self.run_id = run_id
        self.graph = graph if graph is not None else ReasoningGraph()
        self._ids = ids if ids is not None else count()

    def record(
        self,
        kind: NodeKind,
        parents: Sequence[int] = (),
        *,
        status: NodeStatus = "done",
        node_id: int | None = None,
        **fields: Any,
    ) -> Node:
        """Put a node (new, or a newer version of ``node_id``) on the graph and emit it; its fields are
        validated, as a strategy chooses them."""
        parents = tuple(parents)
        return self.put(
            new_node(
                {
                    "id": next(self._ids) if node_id is None else node_id,
                    "kind": kind,
                    "parents": parents,
                    "status": status,
                    "depth": self.depth(parents),
                    "started_at": time.time(),
                    **fields,
                }
            )
        )

    def call_started(
        self,
        kind: NodeKind,
        parents: tuple[int, ...],
        request: ChatRequest,
        strategy: str | None,
        data: dict[str, Any] | None,
    ) -> Node:
        """The ``running`` node of a call about to be sent."""
        return self.put(
            new_node(
                {
                    "id": next(self._ids),
                    "kind": kind,
                    "parents": parents,
                    "request": request,
                    "strategy": strategy,
                    "data": data,
                    "started_at": time.time(),
                    "depth": self.depth(parents),
                }
            )
        )

    def mark(self, node: Node, status: NodeStatus, **fields: Any) -> Node:
        """A recorded node's next version (finished, pruned, scored), emitted; the changed fields are
        validated, as a strategy may choose them."""
        fields["status"] = status
        return self.put(node.model_copy(update=fields))

    def put(self, node: Node) -> Node:
        """Put a node's new version on the graph and emit it to the trace."""
        self.graph.put(node)
        self.trace.emit_node(self.run_id, node)
        return node

    def depth(self, parents: tuple[int, ...]) -> int:
        """One more than the deepest parent's depth (0 for a root)."""
        graph = self.graph
        if len(parents) == 1:  # most nodes: one call under the last
            return graph.node(parents[0]).depth + 1
        return max((graph.node(p).depth for p in parents), default=-1) + 1
