"""Tree search over partial solutions (Tree of Thoughts, beam search, MCTS), with backtracking.

A *thought* is one reasoning step; a path of thoughts from the root is a partial solution. The model proposes
``branching`` next steps, a value function scores each partial solution, and the search decides which to
grow:

- ``beam`` (``bfs``): grow every kept node one level, keep the best ``beam_width`` per depth.
- ``dfs``: descend into the best child first; when a subtree is pruned or ends without an accepted answer,
  record a ``backtrack`` node and try the next sibling (Tree of Thoughts' DFS).
- ``mcts``: UCT selection, expansion, evaluation by the value function, backpropagation.

What it asks the model and how each reply is read live side by side in :mod:`.tree_prompts`. A value reply
with no score leaves the thought unvalued: kept at the pruning bar with a note on its node, never valued 0.

Choose it when a problem has checkable intermediate states (puzzles, proofs, plans). On plain word problems
it rarely beats chain of thought or best-of-n at equal tokens: compare at matched compute before adopting.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from pydantic import Field

from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.context import RunContext
from thinkloop.runtime.result import Candidate, Outcome, StopReason
from thinkloop.strategies.base import Conversation, Strategy, StrategyConfig
from thinkloop.strategies.tree_prompts import PROPOSE_SYSTEM, VALUE_SYSTEM, Proposal, Valuation
from thinkloop.types import ChatRequest
from thinkloop.verifiers.extract import extract_answer

__all__ = ["PROPOSE_SYSTEM", "VALUE_SYSTEM", "Thought", "TreeSearch", "TreeSearchConfig", "ValueFunction"]

ValueFunction = Callable[[str, tuple[str, ...]], float | Awaitable[float]]


class TreeSearchConfig(StrategyConfig):
    mode: Literal["beam", "bfs", "dfs", "mcts"] = "dfs"
    branching: int = Field(default=3, ge=1, le=16, description="Next steps proposed per expansion.")
    beam_width: int = Field(default=2, ge=1, le=64)
    max_depth: int = Field(default=4, ge=1, le=32)
    prune_below: float = Field(default=0.3, ge=0.0, le=1.0, description="Prune thoughts valued below this.")
    iterations: int = Field(default=16, ge=1, le=10_000, description="MCTS iterations.")
    exploration: float = Field(default=1.4, ge=0.0)
    value: Literal["auto", "model", "verifier", "function"] = "auto"
    """auto: the value function if given, else the model's self-evaluation. The run's verifier always
    checks final thoughts; ``verifier`` also uses it to value partial ones."""
    temperature: float | None = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=128, ge=1)
    value_max_tokens: int = Field(default=16, ge=1)


@dataclass
class Thought:
    node_id: int
    steps: tuple[str, ...]
    value: float = 0.0
    final: bool = False
    parent: Thought | None = None
    children: list[Thought] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    expanded: bool = False

    @property
    def depth(self) -> int:
        return len(self.steps)


class _Stop(Exception):
    """Raised inside the search when a thought is accepted."""


@dataclass
class _SearchState:
    """Per-run state, so one TreeSearch object can serve many concurrent runs."""

    accepted: Candidate | None = None
    stopped_by_depth: bool = False
    best: Candidate | None = None
    """The best final thought of *this* search (the run's best may come from elsewhere)."""
    best_partial: Thought | None = None
    """The highest-valued unfinished thought (deeper wins ties): the answer when no thought finished."""
    pruned: int = 0
    finals: int = 0

    def offer(self, ctx: RunContext, candidate: Candidate) -> None:
        if candidate.better_than(self.best):
            self.best = candidate
        ctx.offer(candidate)


class TreeSearch(Strategy):
    """Search over partial solutions with a value function and backtracking."""

    name = "tree"
    Config = TreeSearchConfig
    takes_inner = False
    config: TreeSearchConfig

    def __init__(self, *, value_fn: ValueFunction | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.value_fn = value_fn
        if self.config.value == "function" and value_fn is None:
            from thinkloop.exceptions import ConfigurationError

            raise ConfigurationError("TreeSearch: value='function' needs value_fn=<function>")

    # --- building blocks ----------------------------------------------------------------------------
    def _propose_request(self, question: str, steps: tuple[str, ...]) -> ChatRequest:
        """The next step's prompt, inside the question's conversation: its earlier turns before the problem, its
        follow-ups after, its ``extra_body`` with the request (as :meth:`Strategy.request` sends them)."""
        config = self.config
        conversation = Conversation.of(question)
        return ChatRequest(
            messages=Proposal.messages(question, steps, history=conversation.history, followups=conversation.followups),
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            extra_body=conversation.extra_body,
        )

    async def _expand(self, ctx: RunContext, question: str, thought: Thought, state: _SearchState) -> list[Thought]:
        """Propose children of ``thought`` and value them."""
        thought.expanded = True
        samples = await ctx.sample(
            self._propose_request(question, thought.steps),
            self.config.branching,
            parents=[thought.node_id],
            kind="expand",
            strategy=self.name,
        )
        if samples.budget_hit and not samples.candidates:
            raise BudgetExhausted("no budget left to expand", resource="tokens")
        children: list[Thought] = []
        seen: set[str] = set()
        for candidate in sorted(samples.candidates, key=lambda c: c.node_id or 0):
            step, final = Proposal.read(candidate.text)
            if not step or step in seen:
                continue
            seen.add(step)
            children.append(
                Thought(
                    node_id=candidate.node_id or thought.node_id,
                    steps=(*thought.steps, step),
                    final=final,
                    parent=thought,
                )
            )
        async with anyio.create_task_group() as group:
            for child in children:
                group.start_soon(self._evaluate, ctx, question, child, state)
        thought.children = children
        return children

    def _value_mode(self, ctx: RunContext) -> str:
        mode = self.config.value
        if mode != "auto":
            return mode
        # Not the verifier: a reference-answer verifier scores every partial step 0 (no answer yet), or
        # leaks the reference when a step's last number happens to match it. It checks final thoughts only.
        return "function" if self.value_fn is not None else "model"

    async def _evaluate(self, ctx: RunContext, question: str, thought: Thought, state: _SearchState) -> None:
        """Value a thought; a final thought is also checked by the run's verifier, which may end the search."""
        mode = self._value_mode(ctx)
        unvalued = False
        text = "\n".join(thought.steps)
        answer = extract_answer(thought.steps[-1]) if thought.final else None
        verdict: Candidate | None = None
        if thought.final:  # an answer in hand before its value is known, should the budget stop us here
            state.offer(ctx, Candidate(text=text, answer=answer, node_id=thought.node_id))
        if (thought.final and ctx.verifier is not None) or mode == "verifier":
            candidate = Candidate(text=text, answer=answer, node_id=thought.node_id)
            verdict = await ctx.verify(candidate, strategy=self.name)
        if mode == "function" and self.value_fn is not None:  # (__init__ refuses value=function without one)
            value = self.value_fn(question, thought.steps)
            if inspect.isawaitable(value):
                value = await value
            score = float(value)
        elif mode == "verifier" and verdict is not None:
            score = verdict.score or 0.0
        else:
            read = await self._model_value(ctx, question, thought, text)
            if read is None:
                # No score in the reply: not evidence that the thought is bad. Keep it at the pruning bar
                # (below every thought that was valued higher) and say so on its node.
                score, unvalued = self.config.prune_below, True
            else:
                score = read
        if verdict is not None and thought.final and not verdict.accepted:
            score = min(score, verdict.score or 0.0)
        thought.value = min(1.0, max(0.0, score))
        partial = state.best_partial
        if not thought.final and (partial is None or (thought.value, thought.depth) > (partial.value, partial.depth)):
            state.best_partial = thought
        node = ctx.graph.node(thought.node_id)
        if unvalued:
            note = (
                f"the value reply stated no score (expected 'SCORE: N', 0 to 10); kept at the pruning bar "
                f"{self.config.prune_below}"
            )
            ctx.mark(node, node.status, score=None, answer=answer, data={**(node.data or {}), "value_unread": note})
        else:
            ctx.mark(node, node.status, score=thought.value, answer=answer)
        if thought.final:
            state.finals += 1
            accepted = bool(verdict.accepted) if verdict is not None else None
            candidate = Candidate(
                text=text,
                answer=answer,
                node_id=thought.node_id,
                score=thought.value,
                accepted=accepted,
                feedback=verdict.feedback if verdict else None,
            )
            state.offer(ctx, candidate)
            if accepted:
                state.accepted = candidate
                raise _Stop

    async def _model_value(self, ctx: RunContext, question: str, thought: Thought, text: str) -> float | None:
        """The model's own score of a partial solution in [0, 1]; ``None`` when its reply states none."""
        _, choice = await ctx.side_call(
            Valuation.system,
            Valuation.user(question, thought.steps),
            parents=[thought.node_id],
            kind="evaluate",
            strategy=self.name,
            max_tokens=self.config.value_max_tokens,
        )
        return Valuation.read(choice.text)

    def _prune(self, ctx: RunContext, thought: Thought, reason: str, state: _SearchState) -> None:
        node = ctx.graph.node(thought.node_id)
        if node.status != "pruned":
            state.pruned += 1
            ctx.mark(node, "pruned", data={**(node.data or {}), "pruned": reason})

    # --- the search -----------------------------------------------------------------------------------
    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        state = _SearchState()
        root = Thought(node_id=parent, steps=())
        stop: StopReason = "completed"
        try:
            match self.config.mode:
                case "dfs":
                    await self._dfs(ctx, question, root, state)
                case "mcts":
                    await self._mcts(ctx, question, root, state)
                case _:
                    await self._beam(ctx, question, root, state)
        except* _Stop:
            stop = "accepted"
        except* BudgetExhausted:
            stop = "budget"
        except* BackendError as group:
            if ctx.best is None:
                raise group.exceptions[0] from None
            stop = "error"
        if stop == "completed" and state.stopped_by_depth:
            stop = "max_rounds"
        candidate = state.accepted or state.best or _partial_answer(state.best_partial)
        data = {"mode": self.config.mode, "pruned": state.pruned, "final_thoughts": state.finals}
        if self.config.mode == "mcts":
            data["root_visits"] = root.visits
        return Outcome(
            candidate=candidate, stop_reason=stop, data=data, detail=self._detail(stop, state, ctx.verifier is not None)
        )

    def _detail(self, stop: StopReason, state: _SearchState, checked: bool) -> str:
        """Why the search ended, in one line."""
        config = self.config
        partial = state.best_partial
        fallback = (
            ""
            if state.best is not None or partial is None
            else f"; answering from the best unfinished thought (value {partial.value:.2f})"
        )
        if stop == "accepted":
            return "a final thought passed the check"
        if stop == "max_rounds":
            return (
                f"the depth limit (max_depth={config.max_depth}) was reached"
                + (f" with {state.finals} final thoughts, none accepted" if checked and state.finals else "")
                + fallback
            )
        if state.finals == 0 and state.pruned:
            beam = " or outside the beam" if config.mode in ("beam", "bfs") else ""
            thoughts = f"{state.pruned} thought" + ("" if state.pruned == 1 else "s")
            return (
                f"every branch was pruned ({thoughts} valued below {config.prune_below}{beam}) "
                f"before any reached an answer{fallback}"
            )
        if state.finals == 0:
            return f"no thought reached a final answer{fallback}"
        if checked:
            return f"the search ran out of branches: {state.finals} final thoughts, none passed the check"
        return f"the search ran its course: {state.finals} final thoughts, {state.pruned} pruned"

    async def _dfs(self, ctx: RunContext, question: str, thought: Thought, state: _SearchState) -> None:
        if thought.final:
            return
        if thought.depth >= self.config.max_depth:
            state.stopped_by_depth = True
            return
        children = await self._expand(ctx, question, thought, state)
        promising = []
        for child in sorted(children, key=lambda c: (-c.value, c.node_id)):
            if child.value < self.config.prune_below:
                self._prune(ctx, child, f"value {child.value:.2f} < {self.config.prune_below}", state)
            else:
                promising.append(child)
        for child in promising:
            await self._dfs(ctx, question, child, state)
            # Back here means the subtree ended without an accepted answer: backtrack.
            ctx.record(
                "backtrack", [child.node_id], strategy=self.name, data={"from_depth": child.depth, "value": child.value}
            )

    async def _beam(self, ctx: RunContext, question: str, root: Thought, state: _SearchState) -> None:
        config = self.config
        frontier = [root]
        for _depth in range(config.max_depth):
            growing = [t for t in frontier if not t.final]
            if not growing:
                return
            async with anyio.create_task_group() as group:
                for thought in growing:
                    group.start_soon(self._expand, ctx, question, thought, state)
            children = [c for t in growing for c in t.children]
            ranked = sorted(children, key=lambda c: (-c.value, c.node_id))
            kept: list[Thought] = []
            for child in ranked:
                if child.value < config.prune_below:
                    self._prune(ctx, child, f"value {child.value:.2f} < {config.prune_below}", state)
                elif len(kept) < config.beam_width:
                    kept.append(child)
                else:
                    self._prune(ctx, child, f"outside the beam of {config.beam_width}", state)
            ctx.record(
                "select",
                [k.node_id for k in kept] or [root.node_id],
                strategy=self.name,
                data={"depth": _depth + 1, "kept": [k.node_id for k in kept]},
            )
            if not kept:
                return
            frontier = kept
        state.stopped_by_depth = any(not t.final for t in frontier)

    async def _mcts(self, ctx: RunContext, question: str, root: Thought, state: _SearchState) -> None:
        config = self.config
        for _ in range(config.iterations):
            # Selection: descend by UCT through expanded nodes.
            thought = root
            while thought.expanded and thought.children and not thought.final:
                thought = max(thought.children, key=lambda c: (self._uct(c), -c.node_id))
            # Expansion and evaluation.
            if not thought.final and thought.depth < config.max_depth and not thought.expanded:
                children = await self._expand(ctx, question, thought, state)
                if children:
                    thought = max(children, key=lambda c: (c.value, -c.node_id))
            elif thought.depth >= config.max_depth and not thought.final:
                state.stopped_by_depth = True
            # Backpropagation.
            reward = thought.value
            node: Thought | None = thought
            while node is not None:
                node.visits += 1
                node.value_sum += reward
                node = node.parent
        for thought in _walk(root):
            if thought is not root and thought.node_id != root.node_id:
                graph_node = ctx.graph.node(thought.node_id)
                ctx.mark(
                    graph_node,
                    graph_node.status,
                    data={
                        **(graph_node.data or {}),
                        "visits": thought.visits,
                        "mean_value": thought.value_sum / thought.visits if thought.visits else None,
                    },
                )

    def _uct(self, thought: Thought) -> float:
        if thought.visits == 0:
            return math.inf
        parent_visits = thought.parent.visits if thought.parent else thought.visits
        exploit = thought.value_sum / thought.visits
        return exploit + self.config.exploration * math.sqrt(math.log(max(parent_visits, 1)) / thought.visits)


def _partial_answer(thought: Thought | None) -> Candidate | None:
    """No thought reached a final answer: offer the most promising partial solution, as Tree of Thoughts
    returns its best leaf, with whatever answer its last step states."""
    if thought is None:
        return None
    answer = extract_answer(thought.steps[-1])
    return Candidate(text="\n".join(thought.steps), answer=answer, node_id=thought.node_id, score=thought.value)


def _walk(root: Thought) -> list[Thought]:
    out, stack = [], [root]
    while stack:
        thought = stack.pop()
        out.append(thought)
        stack.extend(thought.children)
    return out
