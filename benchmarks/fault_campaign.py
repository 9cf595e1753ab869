"""A fault campaign against thinkloop's reliability guarantees (issue 25), in a few minutes.

Every run goes through the real ``openai`` SDK to the fault-injecting mock server
(:mod:`thinkloop.testing.faults`), which counts what it would have billed. Four parts:

  budget    self-consistency runs (streamed and not) whose requests meet a seeded mix of faults (an SSE
            error event after generating, a stream cut mid-number with no finish_reason and no [DONE], a
            body truncated under its length, a 500 before or after the work, a hang past the timeout),
            under token or dollar budgets, some with a tool schema. Counted: the server's bill against the
            budget, the run's own account against the server's bill, and answers that are wrong (the mock is
            always right when a reply arrives whole, so a wrong answer can only come from a fault).
  stores    two ``bench run`` processes started together on one ``--out``: the second must stop with one
            line, and no problem may be sent or recorded twice.
  replay    self-consistency runs with concurrent identical requests and jittered replies (ties included),
            each replayed strictly from its trace: graphs compared node for node, answers compared.
  gate      ``bench run`` against a server that takes connections and never answers, and against one that
            refuses the key: seconds to stop, lines printed.

It prints one table in the form of ``docs/reliability.md`` and, last, one JSON object with the figures. It
fails (exit 1) when any guarantee is broken.

Run: ``python benchmarks/fault_campaign.py`` (``--runs 200`` for a longer budget part, ``--quick`` for a smoke
run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx2

from thinkloop import (
    Budget,
    Capabilities,
    ChatRequest,
    OpenAIBackend,
    Price,
    ScriptedBackend,
    SelfConsistency,
)
from thinkloop.bench.store import read_records
from thinkloop.runtime.graph import ReasoningGraph
from thinkloop.runtime.trace import replay
from thinkloop.strategies.base import Conversation
from thinkloop.testing.faults import FaultyServerProcess, serve_faulty
from thinkloop.testing.mock_server import MockConfig

FAULT_MIX = ["ok"] * 5 + ["error", "cut", "truncate", "500", "hang"]


# --- budget -------------------------------------------------------------------------------------------------
async def budget_part(runs: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    figures: Counter[str] = Counter()
    worst = 0.0
    for index in range(runs):
        a, b = rng.randint(10, 9000), rng.randint(10, 9000)
        question = f"What is {a} + {b}?"
        faults = [rng.choice(FAULT_MIX) for _ in range(40)]
        stream = rng.random() < 0.6
        n = rng.randint(2, 5)
        dollars = rng.random() < 0.3
        tools = rng.random() < 0.15
        limit = rng.randint(300, 1600)
        price = Price(input=1_000_000.0, output=1_000_000.0)  # a token costs a dollar: the two limits compare
        budget = Budget(dollars=limit, price=price) if dollars else Budget(tokens=limit)
        asked: str = (
            question
            if not tools
            else Conversation(
                question,
                extra_body={
                    "tools": [
                        {
                            "type": "function",
                            "function": {
                                "name": "lookup",
                                "description": " ".join(["measure"] * 300),
                                "parameters": {"type": "object", "properties": {}},
                            },
                        }
                    ]
                },
            )
        )
        config = MockConfig(p_right=1.0, filler_words=rng.choice([4, 20, 60]), seed=index)
        async with serve_faulty(config, faults=faults) as server:
            backend = OpenAIBackend(
                "mock",
                base_url=server.base_url,
                stream=stream,
                honours_n=False,
                max_retries=2,
                timeout=httpx2.Timeout(0.5, connect=2.0),
            )
            async with backend:
                result = await SelfConsistency(n=n, max_tokens=rng.choice([16, 48, 128])).run(
                    asked, backend=backend, budget=budget
                )
            billed = server.stats.billed_tokens
            met = Counter(server.stats.faults)
        figures["runs"] += 1
        figures["requests"] += sum(met.values())
        for fault, count in met.items():
            if fault != "ok":
                figures[f"fault:{fault}"] += count
        figures["billed"] += billed
        figures["budget"] += limit
        reported = result.spent["dollars" if dollars else "tokens"]
        worst = max(worst, billed / limit)
        figures["over_budget"] += billed > limit
        figures["under_reported"] += reported + 1e-9 < billed
        right = str(a + b)
        figures["answered"] += result.answer is not None
        figures["wrong_answers"] += result.answer is not None and result.answer != right
        figures["tool_runs"] += tools
    return dict(figures) | {"worst_billed_over_budget": round(worst, 3)}


# --- stores -------------------------------------------------------------------------------------------------
def _bench(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "thinkloop",
        "bench",
        "run",
        str(data),
        "--question-field",
        "q",
        "--answer-field",
        "a",
        "--id-field",
        "id",
        "--strategy",
        "direct",
        "--model",
        "mock",
        "--base-url",
        url,
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def stores_part(trials: int, problems: int, folder: Path) -> dict[str, Any]:
    figures: Counter[str] = Counter()
    for trial in range(trials):
        data, out = folder / f"d{trial}.jsonl", folder / f"r{trial}.jsonl"
        data.write_text(
            "".join(
                json.dumps({"id": f"s{i}", "q": f"What is {i} + {1000 * (trial + 1)}?", "a": i + 1000 * (trial + 1)})
                + "\n"
                for i in range(problems)
            )
        )
        with FaultyServerProcess(MockConfig(p_right=1.0, filler_words=4, latency=0.05)) as server:
            first = subprocess.Popen(_bench(data, out, server.base_url), stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while (not out.exists() or not out.read_bytes()) and time.monotonic() < deadline:
                time.sleep(0.02)
            second = subprocess.run(_bench(data, out, server.base_url), capture_output=True, text=True, timeout=120)
            first.wait(timeout=120)
            if first.stderr is not None:
                first.stderr.close()
            sent = Counter(server.stats()["requests_by_question"])
        records = read_records(out)
        ids = Counter(r.id for r in records)
        figures["runs"] += 2
        figures["second_refused"] += (
            second.returncode == 1
            and second.stderr.strip().count("\n") == 0
            and ("already being written by process" in second.stderr)
        )
        figures["records_lost"] += problems - len(ids)
        figures["records_duplicated"] += sum(c - 1 for c in ids.values())
        figures["problems_sent_twice"] += sum(c - 1 for c in sent.values() if c > 1)
        figures["first_exit_0"] += first.returncode == 0
    return dict(figures)


# --- replay -------------------------------------------------------------------------------------------------
def _by_node(graph: ReasoningGraph) -> dict[int, tuple[object, ...]]:
    return {n.id: (n.kind, n.status, n.parents, n.text, n.answer) for n in graph.nodes()}


async def replay_part(runs: int, seed: int, folder: Path) -> dict[str, Any]:
    figures: Counter[str] = Counter()
    concurrent = Capabilities(honours_n=False)
    for index in range(runs):
        rng = random.Random(seed * 1000 + index)
        answers = ["7", "8"] if index % 3 == 0 else ["4", "5", "6"]  # a third are two-answer ties in the making

        async def reply(request: ChatRequest, rng: random.Random = rng, answers: list[str] = answers) -> str:
            await anyio.sleep(rng.uniform(0, 0.01))
            return f"Working {rng.random():.6f}. Answer: {rng.choice(answers)}"

        path = folder / f"replay{index}.jsonl"
        n = 2 if index % 3 == 0 else rng.randint(3, 6)
        strategy = SelfConsistency(n=n, max_tokens=32)
        original = await strategy.run("q", backend=ScriptedBackend(reply, capabilities=concurrent), trace_path=path)
        figures["runs"] += 1
        try:
            replayed = await strategy.run("q", backend=replay(path, strict=True, capabilities=concurrent))
        except Exception:  # a ReplayMismatch: a divergence caught, never an answer given differently
            figures["replay_mismatch_raised"] += 1
            continue
        figures["graph_divergences"] += _by_node(replayed.graph) != _by_node(original.graph)
        figures["answer_divergences"] += replayed.answer != original.answer
    return dict(figures)


# --- gate ---------------------------------------------------------------------------------------------------
def gate_part(folder: Path) -> dict[str, Any]:
    data, figures = folder / "gate.jsonl", {}
    data.write_text(
        "".join(json.dumps({"id": f"s{i}", "q": f"What is {i} + 7?", "a": i + 7}) + "\n" for i in range(50))
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        started = time.monotonic()
        hung = subprocess.run(_bench(data, folder / "hung.jsonl", url), capture_output=True, text=True, timeout=120)
        figures["hung_server_s"] = round(time.monotonic() - started, 1)
    finally:
        listener.close()
    figures["hung_server_lines"] = len(hung.stderr.strip().splitlines())
    figures["hung_server_named"] = "did not answer" in hung.stderr
    with FaultyServerProcess(MockConfig(), api_key="sk-right-key-0000") as server:
        started = time.monotonic()
        refused = subprocess.run(
            _bench(data, folder / "key.jsonl", server.base_url),
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, OPENAI_API_KEY="sk-wrong-key-0000"),
        )
        figures["wrong_key_s"] = round(time.monotonic() - started, 1)
        figures["wrong_key_chat_requests"] = server.stats()["requests"]
    figures["wrong_key_lines"] = len(refused.stderr.strip().splitlines())
    figures["wrong_key_names_401"] = "401" in refused.stderr
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=80, help="budget runs")
    parser.add_argument("--replays", type=int, default=60)
    parser.add_argument("--store-trials", type=int, default=3)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.replays, args.store_trials = 10, 6, 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        budget = anyio.run(budget_part, args.runs, args.seed)
        stores = stores_part(args.store_trials, 16, folder)
        replays = anyio.run(replay_part, args.replays, args.seed, folder)
        gate = gate_part(folder)
    faults = {k.removeprefix("fault:"): v for k, v in budget.items() if k.startswith("fault:")}
    rows = [
        (
            "Budget under faults",
            f"{budget['runs']} runs, {budget['requests']} requests",
            ", ".join(f"{k} {v}" for k, v in sorted(faults.items())) + f"; {budget['tool_runs']} with a tool schema",
            f"server billed {budget['billed']} of {budget['budget']} budgeted; {budget['over_budget']} runs over "
            f"(worst {budget['worst_billed_over_budget']}x); {budget['under_reported']} runs reported less than billed",
            f"{budget['wrong_answers']} wrong answers of {budget['answered']} answered",
        ),
        (
            "Two writers on one --out",
            f"{stores['runs']} bench runs",
            "a second process on the same file",
            f"second refused with one line: {stores['second_refused']} of {stores['runs'] // 2}",
            f"{stores['records_lost']} lost, {stores['records_duplicated']} duplicated, "
            f"{stores['problems_sent_twice']} sent twice",
        ),
        (
            "Replay of concurrent identical requests",
            f"{replays['runs']} runs",
            "jittered replies, a third two-answer ties",
            f"{replays.get('replay_mismatch_raised', 0)} ReplayMismatch",
            f"{replays['graph_divergences']} graph divergences, {replays['answer_divergences']} answer divergences",
        ),
        (
            "Health gate",
            "2 bench runs of 50 problems",
            "a hung server; a wrong key (401)",
            f"hung: stopped in {gate['hung_server_s']} s, {gate['hung_server_lines']} line; 401: stopped in "
            f"{gate['wrong_key_s']} s, {gate['wrong_key_lines']} line naming it: {gate['wrong_key_names_401']}",
            f"{gate['wrong_key_chat_requests']} chat requests sent with the wrong key",
        ),
    ]
    print("| Campaign | Runs | Faults | Budget / outcome | Records, answers |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    broken = (
        budget["over_budget"]
        or budget["under_reported"]
        or budget["wrong_answers"]
        or stores["records_lost"]
        or stores["records_duplicated"]
        or stores["problems_sent_twice"]
        or stores["second_refused"] != stores["runs"] // 2
        or replays["graph_divergences"]
        or replays["answer_divergences"]
        or not gate["hung_server_named"]
        or gate["hung_server_lines"] != 1
        or gate["wrong_key_lines"] != 1
        or not gate["wrong_key_names_401"]
    )
    print(
        json.dumps(
            {
                "budget": budget,
                "stores": stores,
                "replay": replays,
                "gate": gate,
                "seconds": round(time.monotonic() - started, 1),
                "broken": bool(broken),
            }
        )
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
