"""Self-consistency throughput: thinkloop against the raw ``openai`` client, on one mock server.

In one run and against the same mock OpenAI-compatible server (in its own process, so it does not share the
client's CPU measurement), for each latency it times four ways to answer every question with a vote over
``n`` samples, with at most ``--concurrency`` requests in flight:

  raw-n     the raw ``openai`` client, one request with ``n`` choices per question
  raw-1xn   the raw client, ``n`` separate requests per question
  sc        thinkloop ``SelfConsistency(n=8)`` through ``OpenAIBackend(model, base_url=URL)`` exactly as the
            README constructs it (one shared ``Engine`` bounding requests in flight)
  sc-explicit  the same with ``honours_n=True`` spelled out
  sc-adapt  thinkloop ``SelfConsistency(n=8, adaptive=True)``

Then, on a mock switched to ignore ``n`` (one choice per request, as llama.cpp's server and Ollama do), it runs
``sc`` once more with the default constructor and reports the requests and choices the server saw: every
sample must arrive, with no more requests than needed (one try with ``n``, then one choice per request).

It prints a table of medians over the repeats (wall seconds, requests and choices the server saw, the most
requests in flight, client CPU ms per question, share of questions voted right) and, as its last line, one
JSON object with the ratios against raw ``n``. Run: ``python benchmarks/sc_throughput.py`` (``--quick`` for a
smoke run, ``--profile sc`` to cProfile one mode).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import json
import os
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import openai
from rich.console import Console
from rich.table import Table

from thinkloop import ChatRequest, Engine, OpenAIBackend
from thinkloop.strategies.base import STEP_BY_STEP_SYSTEM
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.testing import MockConfig, MockServerProcess, right_answer, vote_right_probability

MODES = ("raw-n", "raw-1xn", "sc", "sc-explicit", "sc-adapt")
MODEL = "mock"
MAX_TOKENS = 512
TEMPERATURE = 0.7
_ANSWER = re.compile(r"answer is\s*(-?\d+)", re.IGNORECASE)
# Modules ``import thinkloop`` must not load: optional extras, and what loads on first use (the openai SDK,
# sympy through math-verify). networkx itself is core (the graph), but its drawing never pulls in matplotlib.
HEAVY_MODULES = ("llama_cpp", "matplotlib", "openai", "math_verify", "sympy", "uvicorn")


@dataclass
class Measurement:
    mode: str
    latency: float
    wall_s: float
    cpu_s: float
    requests: int
    choices: int
    max_in_flight: int
    right: int
    questions: int

    @property
    def cpu_ms_per_question(self) -> float:
        return 1000 * self.cpu_s / self.questions


def make_questions(count: int, seed: int = 0) -> list[str]:
    """Distinct sums, so the mock's per-question answer stream is never shared by two questions."""
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < count:
        pairs.add((rng.randint(10, 999), rng.randint(10, 999)))
    return [f"What is {a} + {b}?" for a, b in sorted(pairs)]


def messages_for(question: str) -> list[dict[str, str]]:
    # The same prompt thinkloop's strategies send, so both sides move the same bytes.
    return [{"role": "system", "content": STEP_BY_STEP_SYSTEM}, {"role": "user", "content": question}]


def raw_vote(texts: list[str]) -> str | None:
    answers = [m.group(1) for t in texts if (m := _ANSWER.search(t)) is not None]
    return Counter(answers).most_common(1)[0][0] if answers else None


# --- the four clients -----------------------------------------------------------------------------------
# Each builds its client and sends one warm-up request outside the timed window, then answers every question.

Answers = dict[str, str | None]


async def _warm_up_raw(client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "warm up"}], max_tokens=MAX_TOKENS
    )


async def run_raw(base_url: str, questions: list[str], n: int, concurrency: int, *, separate: bool) -> Timed:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=2)
    await _warm_up_raw(client)
    limiter = anyio.CapacityLimiter(concurrency)
    answers: Answers = {}

    async def one_request(question: str, k: int, texts: list[str]) -> None:
        async with limiter:
            response = await client.chat.completions.create(
                model=MODEL, messages=messages_for(question), n=k, temperature=TEMPERATURE, max_tokens=MAX_TOKENS
            )
        texts.extend(c.message.content or "" for c in response.choices)

    async def one_question(question: str) -> None:
        texts: list[str] = []
        if separate:
            async with anyio.create_task_group() as group:
                for _ in range(n):
                    group.start_soon(one_request, question, 1, texts)
        else:
            await one_request(question, n, texts)
        answers[question] = raw_vote(texts)

    try:
        return await _timed(questions, one_question, answers)
    finally:
        await client.close()


async def run_thinkloop(
    base_url: str, questions: list[str], n: int, concurrency: int, *, adaptive: bool, explicit: bool = False
) -> Timed:
    # The default constructor, as a user writes it; "explicit" says that the server honours n.
    backend = (
        OpenAIBackend(MODEL, base_url=base_url, honours_n=True) if explicit else OpenAIBackend(MODEL, base_url=base_url)
    )
    await backend.complete(ChatRequest.of("warm up", max_tokens=MAX_TOKENS))
    engine = Engine(backend, max_concurrency=concurrency)
    strategy = SelfConsistency(n=n, adaptive=adaptive, temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    answers: Answers = {}

    async def one_question(question: str) -> None:
        result = await engine.run(strategy, question)
        answers[question] = result.answer

    try:
        return await _timed(questions, one_question, answers)
    finally:
        await backend.aclose()


@dataclass
class Timed:
    wall_s: float
    cpu_s: float
    answers: Answers


async def _timed(questions: list[str], one: Callable[[str], Awaitable[None]], answers: Answers) -> Timed:
    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for question in questions:
            group.start_soon(one, question)
    return Timed(time.perf_counter() - wall, time.process_time() - cpu, answers)


def run_mode(mode: str, base_url: str, questions: list[str], n: int, concurrency: int) -> Timed:
    if mode in ("raw-n", "raw-1xn"):
        call = functools.partial(run_raw, base_url, questions, n, concurrency, separate=mode == "raw-1xn")
    else:
        call = functools.partial(
            run_thinkloop,
            base_url,
            questions,
            n,
            concurrency,
            adaptive=mode == "sc-adapt",
            explicit=mode == "sc-explicit",
        )
    return anyio.run(call)


def measure(server: MockServerProcess, mode: str, questions: list[str], n: int, concurrency: int) -> Measurement:
    server.reset()
    # A full collection now, so none lands inside the timed run: with the SDKs loaded one costs ~150 ms on
    # this machine, and where it falls would otherwise decide which mode looks slower.
    gc.collect()
    timed = run_mode(mode, server.base_url, questions, n, concurrency)
    stats = server.stats()
    right = sum(1 for q in questions if timed.answers.get(q) == str(right_answer(q)))
    return Measurement(
        mode=mode,
        latency=server.config.latency,
        wall_s=timed.wall_s,
        cpu_s=timed.cpu_s,
        requests=stats["requests"] - 1,
        choices=stats["choices"] - 1,  # less the warm-up request
        max_in_flight=stats["max_in_flight"],
        right=right,
        questions=len(questions),
    )


def median_of(runs: list[Measurement]) -> Measurement:
    first = runs[0]
    return Measurement(
        mode=first.mode,
        latency=first.latency,
        wall_s=statistics.median(r.wall_s for r in runs),
        cpu_s=statistics.median(r.cpu_s for r in runs),
        requests=round(statistics.median(r.requests for r in runs)),
        choices=round(statistics.median(r.choices for r in runs)),
        max_in_flight=max(r.max_in_flight for r in runs),
        right=round(statistics.median(r.right for r in runs)),
        questions=first.questions,
    )


# --- import cost ----------------------------------------------------------------------------------------
def best_time(command: list[str], repeats: int) -> float | None:
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            return None
        best = elapsed if best is None else min(best, elapsed)
    return best


def import_cost(repeats: int = 5) -> dict[str, Any]:
    """Best-of wall time of ``python -c "import thinkloop"`` and ``thinkloop --help``, and what they import."""
    python = sys.executable
    baseline = best_time([python, "-c", "pass"], repeats)
    imported = best_time([python, "-c", "import thinkloop"], repeats)
    cli = shutil.which("thinkloop", path=os.path.dirname(python)) or shutil.which("thinkloop")
    help_s = best_time([cli, "--help"], repeats) if cli else None
    probe = f"import sys, json, thinkloop; print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    heavy = json.loads(done.stdout) if done.returncode == 0 else None
    return {"python_s": baseline, "import_s": imported, "help_s": help_s, "heavy_imported": heavy}


# --- profiling ------------------------------------------------------------------------------------------
def profile_mode(mode: str, latency: float, questions: list[str], n: int, concurrency: int, top: int) -> None:
    with MockServerProcess(MockConfig(latency=latency)) as server:
        run_mode(mode, server.base_url, questions[:8], n, concurrency)  # warm imports outside the profile
        server.reset()
        profiler = cProfile.Profile()
        profiler.enable()
        run_mode(mode, server.base_url, questions, n, concurrency)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


# --- main -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latencies", default="0,0.2", help="seconds per request, comma separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--quick", action="store_true", help="40 questions, 1 repeat: a smoke run")
    parser.add_argument("--profile", choices=MODES, help="cProfile one mode at the first latency and exit")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile to print")
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.repeats = 40, 1
    latencies = [float(x) for x in args.latencies.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    questions = make_questions(args.questions)
    if args.profile:
        profile_mode(args.profile, latencies[0], questions, args.n, args.concurrency, args.top)
        return

    console = Console(highlight=False, width=max(Console().width, 120))
    load_before = os.getloadavg()[0]
    imports = import_cost()
    console.print(
        f"import thinkloop: {_ms(imports['import_s'])} (python alone {_ms(imports['python_s'])}); "
        f"thinkloop --help: {_ms(imports['help_s'])}; heavy modules imported: {imports['heavy_imported']}"
    )
    results: dict[tuple[float, str], Measurement] = {}
    for latency in latencies:
        with MockServerProcess(MockConfig(latency=latency)) as server:
            runs: dict[str, list[Measurement]] = {m: [] for m in modes}
            for _ in range(args.repeats):
                for mode in modes:  # interleaved, so drift in the machine's load hits every mode alike
                    runs[mode].append(measure(server, mode, questions, args.n, args.concurrency))
            for mode in modes:
                results[latency, mode] = median_of(runs[mode])

    with MockServerProcess(MockConfig(latency=0.0, max_choices=1)) as server:
        ignored = measure(server, "sc", questions, args.n, args.concurrency)
    expected = vote_right_probability(args.n)
    table = Table(
        title=f"{args.questions} questions x vote over {args.n}, {args.concurrency} in flight, "
        f"median of {args.repeats} (expected share voted right with {args.n} samples: {expected:.1%})"
    )
    for column in (
        "latency",
        "mode",
        "wall s",
        "vs raw-n",
        "requests",
        "choices",
        "max in flight",
        "CPU ms/q",
        "CPU vs raw-n",
        "voted right",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for (latency, mode), m in results.items():
        base = results.get((latency, "raw-n"))
        table.add_row(
            f"{latency * 1000:.0f} ms",
            mode,
            f"{m.wall_s:.2f}",
            _ratio(m.wall_s, base.wall_s if base else None),
            str(m.requests),
            str(m.choices),
            str(m.max_in_flight),
            f"{m.cpu_ms_per_question:.2f}",
            _ratio(m.cpu_s, base.cpu_s if base else None),
            f"{m.right / m.questions:.1%}",
        )
    console.print(table)
    load_after = os.getloadavg()[0]
    console.print(
        f"load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores (busy cores "
        "slow the client and the server alike). Requests and choices are what the server saw: adaptive SC's "
        "cancelled samples included, which can also lift its in-flight count past the client's limit."
    )
    console.print(
        f"mock ignoring n: sc (default constructor) sent {ignored.requests} requests for {ignored.choices} choices "
        f"({args.questions} questions x {args.n}; the fewest possible: {args.questions * args.n})"
    )
    out = summary(results, imports, expected, args)
    out["ignores_n"] = {"requests": ignored.requests, "choices": ignored.choices, "needed": args.questions * args.n}
    out["load_average"] = [round(load_before, 2), round(load_after, 2)]
    print(json.dumps(out))


def summary(
    results: dict[tuple[float, str], Measurement], imports: dict[str, Any], expected: float, args: argparse.Namespace
) -> dict[str, Any]:
    latency = 0.2 if any(lat == 0.2 for lat, _ in results) else max(lat for lat, _ in results)
    out: dict[str, Any] = {
        "benchmark": "sc_throughput",
        "questions": args.questions,
        "n": args.n,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "latency_s": latency,
        "expected_vote_right": round(expected, 4),
    }
    base, fixed, adaptive = (results.get((latency, m)) for m in ("raw-n", "sc", "sc-adapt"))
    explicit = results.get((latency, "sc-explicit"))
    if base and explicit:
        out["explicit_wall_ratio_vs_raw_n"] = round(explicit.wall_s / base.wall_s, 3)
        out["explicit_cpu_ratio_vs_raw_n"] = round(explicit.cpu_s / base.cpu_s, 3)
    if base and fixed:
        out["wall_ratio_vs_raw_n"] = round(fixed.wall_s / base.wall_s, 3)
        out["cpu_ratio_vs_raw_n"] = round(fixed.cpu_s / base.cpu_s, 3)
        out["sc_vote_right"] = round(fixed.right / fixed.questions, 4)
        out["sc_choices_per_question"] = round(fixed.choices / fixed.questions, 2)
        out["targets_met"] = out["wall_ratio_vs_raw_n"] <= 1.1 and out["cpu_ratio_vs_raw_n"] <= 1.5
    if base:
        out["raw_n_vote_right"] = round(base.right / base.questions, 4)
        out["raw_n_wall_s"] = round(base.wall_s, 3)
        out["raw_n_cpu_ms_per_question"] = round(base.cpu_ms_per_question, 3)
    if fixed:
        out["sc_wall_s"] = round(fixed.wall_s, 3)
        out["sc_cpu_ms_per_question"] = round(fixed.cpu_ms_per_question, 3)
    separate = results.get((latency, "raw-1xn"))
    if separate and base:
        out["raw_1xn_wall_ratio_vs_raw_n"] = round(separate.wall_s / base.wall_s, 3)
    if adaptive:
        out["adaptive_vote_right"] = round(adaptive.right / adaptive.questions, 4)
        out["adaptive_choices_per_question"] = round(adaptive.choices / adaptive.questions, 2)
        if base:
            out["adaptive_wall_ratio_vs_raw_n"] = round(adaptive.wall_s / base.wall_s, 3)
            out["adaptive_cpu_ratio_vs_raw_n"] = round(adaptive.cpu_s / base.cpu_s, 3)
    for lat, mode in results:
        if lat != latency and mode == "sc" and (lat, "raw-n") in results:
            key = f"{lat * 1000:.0f}ms"
            out[f"wall_ratio_vs_raw_n_{key}"] = round(results[lat, "sc"].wall_s / results[lat, "raw-n"].wall_s, 3)
            out[f"cpu_ratio_vs_raw_n_{key}"] = round(results[lat, "sc"].cpu_s / results[lat, "raw-n"].cpu_s, 3)
    out["import_s"] = _round(imports["import_s"])
    out["python_s"] = _round(imports["python_s"])
    out["help_s"] = _round(imports["help_s"])
    out["heavy_imported"] = imports["heavy_imported"]
    return out


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def _ratio(value: float, base: float | None) -> str:
    return "" if not base else f"{value / base:.2f}x"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


if __name__ == "__main__":
    main()
