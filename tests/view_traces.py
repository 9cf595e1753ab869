"""Real traces for the viewer and OpenTelemetry tests: ScriptedBackend runs of real strategies.

Each builder runs a strategy through the engine with a JSONL trace, so the tests read the format the
runtime writes, not a hand-made imitation.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

from support import TREE, VALUE
from thinkloop import Budget, Result, ScriptedBackend, Verdict
from thinkloop.backends.base import Capabilities
from thinkloop.strategies.base import Strategy
from thinkloop.strategies.cot import ChainOfThought
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.strategies.tree_search import TreeSearch

SEQUENTIAL = Capabilities(honours_n=False, prompt_overhead_tokens=0)

# Model output that would run script if it were ever treated as markup.
INJECTION = (
    '</script><script>alert(1)</script><img src=x onerror="alert(2)">'
    '<a href="javascript:alert(3)">click</a> [link](javascript:alert(4)) \u2028<!-- Answer: <b>7</b>'
)


def self_consistency(
    path: Path,
    *,
    answers: tuple[str, ...] = ("42", "42", "41", "42", "40"),
    latency: float = 0.02,
    budget: Budget | None = None,
) -> Result:
    """Five concurrent samples and a vote: 42 wins 3 to 1 to 1."""
    replies = iter(answers)
    backend = ScriptedBackend(
        lambda request: f"Let me think step by step. Answer: {next(replies)}", latency=latency, capabilities=SEQUENTIAL
    )
    strategy = SelfConsistency(n=len(answers))
    return strategy.run_sync(
        "What is 6 * 7?", backend=backend, trace_path=path, budget=budget or Budget(tokens=20_000, calls=20)
    )


def failed_check(path: Path) -> Result:
    """A vote whose winner fails the run's check, over four samples of which one states no answer."""
    from thinkloop.verifiers.numeric import NumberWithin

    replies = iter(["Answer: 42", "Answer: 42", "I do not know.", "Answer: 41"])
    backend = ScriptedBackend(lambda request: next(replies), capabilities=SEQUENTIAL)
    return SelfConsistency(n=4).run_sync("What is 6 * 7?", backend=backend, trace_path=path, verifier=NumberWithin(40))


# A Game-of-24 puzzle: only "2 * 3 = 6" leads to 24; two better-valued branches are dead ends, so depth-first
# search backtracks out of them, and "4 / 4" is pruned by its value (TREE and VALUE in support.py).


class MakesTwentyFour:
    """Exact verifier: the final expression uses 1 2 3 4 once each and equals 24."""

    async def verify(self, question, candidate, ctx=None):  # type: ignore[no-untyped-def]
        expression = candidate.text.rsplit("Answer:", 1)[-1].strip()
        digits = sorted(re.findall(r"\d", expression))
        ok = digits == ["1", "2", "3", "4"] and eval(expression, {"__builtins__": {}}) == 24
        return Verdict.accept() if ok else Verdict.reject(f"{expression} does not make 24")


def tree_search(path: Path, *, sinks: tuple = ()) -> Result:
    """Depth-first tree search that backtracks twice, prunes a branch and ends on a verified answer."""
    served: dict[str, itertools.count] = {}

    def reply(request):  # type: ignore[no-untyped-def]
        steps = re.findall(r"Step \d+: (.*)", request.messages[-1].content)
        state = steps[-1] if steps else ""
        options = TREE.get(state, ["Answer: 0"])
        return options[next(served.setdefault(state, itertools.count())) % len(options)]

    strategy = TreeSearch(
        mode="dfs", branching=4, max_depth=4, value_fn=lambda question, steps: VALUE.get(steps[-1], 0.5)
    )
    return strategy.run_sync(
        "Make 24 from 1 2 3 4",
        backend=ScriptedBackend(reply, capabilities=SEQUENTIAL),
        verifier=MakesTwentyFour(),
        trace_path=path,
        sinks=sinks,
    )


def injected(path: Path) -> Result:
    """One chain-of-thought call whose question and completion are hostile markup."""
    backend = ScriptedBackend([INJECTION])
    return ChainOfThought().run_sync(f"Summarise {INJECTION}", backend=backend, trace_path=path)


def big_beam_search(path: Path, *, beam_width: int, branching: int, max_depth: int) -> Result:
    """A wide beam search: many calls, most pruned outside the beam (the viewer's size test)."""
    counter = itertools.count()
    backend = ScriptedBackend(lambda request: f"step {next(counter)}", capabilities=SEQUENTIAL)
    strategy: Strategy = TreeSearch(
        mode="beam",
        branching=branching,
        beam_width=beam_width,
        max_depth=max_depth,
        prune_below=0.0,
        value_fn=lambda question, steps: int(steps[-1].split()[-1]) * 37 % 100 / 100,
    )
    return strategy.run_sync("Grow a wide tree", backend=backend, trace_path=path)


def reasoning(path: Path) -> Result:
    """A model that thinks aloud in <think> tags before its answer."""
    backend = ScriptedBackend(["<think>6 times 7: 6 sevens are 42.</think>The product is 42. Answer: 42"])
    return ChainOfThought().run_sync("What is 6 * 7?", backend=backend, trace_path=path)


def tiled(source: Path, out: Path, *, nodes: int) -> int:
    """A run of at least ``nodes`` nodes: copies of a real run's subtrees hung under its one question.

    Every line is a real one from ``source`` (ids and parents shifted per copy, times kept), so the page
    meets the format the runtime writes, at a size no test can afford to generate call by call.
    """
    lines = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    # Each node's first event (when it started) and its last (its final state): the in-between versions
    # (a score set after the call) would only slow the test down.
    first: dict[int, dict] = {}
    last: dict[int, dict] = {}
    for line in lines:
        if line["kind"] == "node":
            first.setdefault(line["node"]["id"], line)
            last[line["node"]["id"]] = line
    node_lines = [
        line
        for line in lines
        if line["kind"] == "node" and (first[line["node"]["id"]] is line or last[line["node"]["id"]] is line)
    ]
    size = max(line["node"]["id"] for line in node_lines) + 1
    copies = -(-(nodes - 1) // (size - 1))
    with out.open("w", encoding="utf-8") as file:
        file.write(json.dumps(lines[0]) + "\n")
        for copy in range(copies):
            shift = copy * size
            for line in node_lines:
                node = line["node"]
                if node["id"] == 0:
                    if copy == 0:
                        file.write(json.dumps(line) + "\n")
                    continue
                parents = [p if p == 0 else p + shift for p in node["parents"]]
                moved = node | {"id": node["id"] + shift, "parents": parents}
                file.write(json.dumps(line | {"node": moved}) + "\n")
        file.write(json.dumps(lines[-1]) + "\n")
    return 1 + copies * (size - 1)
