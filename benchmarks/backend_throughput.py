"""Tokens per second of the embedded SmolLM2-135M in-process: one answer per request, n answers sampled one
after another (the path before batching), and n answers sampled together in batched decode steps; then
self-consistency (SC@n) wall time per question on SVAMP, one after another against batched.

Every mode generates the same requests (same prompts, temperature and ``max_tokens``) after one warm-up
request, once per round with the modes interleaved; the table shows each mode's median round:

  n=1 t=T                 LlamaCppBackend(n_threads=T), one answer per request
  n=K sequential t=T      LlamaCppBackend(n_threads=T, max_parallel=1): K answers per request, one after another
  n=K batched t=T         LlamaCppBackend(n_threads=T): K answers per request in shared decode steps
  ... t=default           LlamaCppBackend() as users get it: default_threads() for one answer at a time,
                          the measured thread count for batched decoding

Concurrent requests (``--concurrent K``, default 8; continuous batching), in their own table, each mode once
per round, interleaved:

  K one at a time               K single-answer requests sent one after another (each alone: the sequential
                                path with the prefix cache)
  xK concurrent, batching off   the same K in flight at once, LlamaCppBackend(batch_requests=False): they queue
  xK concurrent, batching on    the same K in flight at once, LlamaCppBackend(): they share decode steps
  n=K one request               one request for K answers to the first prompt (the batched decoder's best case)
  serve xK, batching off / on   a real ``thinkloop serve`` (uvicorn) on the embedded model on 127.0.0.1, K
                                concurrent OpenAI SDK clients sending one request each (``thinkloop[direct]``:
                                one model call), THINKLOOP_BATCH_REQUESTS=0 / 1 (``--serve-rows``)

Throughput is completion tokens over wall-clock seconds for the whole mode; latency is per request. The
SC part runs ``SelfConsistency(n=K)`` on the first SVAMP questions with both default backends, alternating
which goes first, and reports the median and mean wall time per question. ``--server`` adds the managed
llama.cpp server (one request at a time, and C in flight). The figures depend on the CPU and on whatever
else runs on it, so the load average is printed with them.

Run: ``python benchmarks/backend_throughput.py`` (``--rounds 1 --max-tokens 32 --sc-questions 3`` for a
quick look; ``--json`` for machine-readable figures). Only the concurrent table, with serve:
``python benchmarks/backend_throughput.py --concurrent-only --serve-rows --rounds 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio
import openai

from thinkloop import ChatRequest, LlamaCppBackend, SelfConsistency, managed_llama_server
from thinkloop.backends.base import Backend
from thinkloop.bench.datasets import load_dataset

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works to a child.",
    "Describe your ideal weekend in detail.",
    "Write a letter to a friend about a trip to the mountains.",
]


@dataclass
class Figures:
    mode: str
    requests: int
    tokens: int
    wall_s: float
    latencies: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0

    @property
    def p50_latency_s(self) -> float:
        return statistics.median(self.latencies)

    def row(self, width: int = 28) -> str:
        return (
            f"{self.mode:<{width}} {self.requests:>8} {self.tokens:>7} {self.wall_s:>8.2f} "
            f"{self.tokens_per_s:>8.1f} {self.p50_latency_s:>9.2f}"
        )


def requests_for(count: int, max_tokens: int, n: int = 1) -> list[ChatRequest]:
    return [
        # No seed: the everyday path. (Seeded or not, an in-process request reuses its prompt's prefix from
        # the prefix cache exactly: a seed no longer costs a fresh evaluation.)
        ChatRequest.of(PROMPTS[i % len(PROMPTS)], temperature=0.8, max_tokens=max_tokens, n=n)
        for i in range(count)
    ]


async def measure(mode: str, backend: Backend, requests: list[ChatRequest], concurrency: int = 1) -> Figures:
    """Send ``requests`` with at most ``concurrency`` in flight; count completion tokens over wall time."""
    tokens = 0
    latencies: list[float] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(request: ChatRequest) -> None:
        nonlocal tokens
        async with limiter:
            started = time.perf_counter()
            completion = await backend.complete(request)
            latencies.append(time.perf_counter() - started)
            tokens += completion.usage.completion_tokens or 0

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for request in requests:
            group.start_soon(one, request)
    return Figures(mode, len(requests), tokens, time.perf_counter() - started, latencies)


class EmbeddedServe:
    """``thinkloop serve`` on the embedded model, on a free loopback port, batching across requests or not."""

    def __init__(self, batch_requests: bool) -> None:
        env = {**os.environ, "THINKLOOP_BATCH_REQUESTS": "1" if batch_requests else "0"}
        command = [sys.executable, "-m", "thinkloop", "serve", "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"thinkloop serve did not start: {line!r}")
        self.url = line.split()[-1].rstrip("/")

    async def complete(self, request: ChatRequest) -> int:
        """One request from a client of its own (as K separate users would send them); completion tokens."""
        base_url = self.url if self.url.endswith("/v1") else f"{self.url}/v1"
        async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
            response = await client.chat.completions.create(
                model="thinkloop[direct]",
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                max_tokens=request.max_tokens,
                temperature=request.temperature,
            )
        return response.usage.completion_tokens if response.usage else 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def measure_serve(mode: str, server: EmbeddedServe, requests: list[ChatRequest]) -> Figures:
    """All ``requests`` at once, each from its own OpenAI client; completion tokens over wall time."""
    tokens = 0
    latencies: list[float] = []

    async def one(request: ChatRequest) -> None:
        nonlocal tokens
        started = time.perf_counter()
        got = await server.complete(request)  # awaited first: `tokens += await ...` would read tokens before
        tokens += got
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for request in requests:
            group.start_soon(one, request)
    return Figures(mode, len(requests), tokens, time.perf_counter() - started, latencies)


async def concurrent(args: argparse.Namespace, stack: AsyncExitStack) -> dict[str, list[Figures]]:
    """K single-answer requests in flight at once, batching across requests off and on, against the same K
    one at a time and one n=K request; through the backend, and through serve (``--serve-rows``)."""
    k = args.concurrent
    singles = requests_for(k, args.max_tokens)
    on, off = LlamaCppBackend(), LlamaCppBackend(batch_requests=False)
    for backend in (on, off):
        stack.callback(backend.close)
        await warm(backend)
    modes: list[tuple[str, Backend | EmbeddedServe, list[ChatRequest], int]] = [
        (f"{k} one at a time", on, singles, 1),
        (f"x{k} concurrent, batching off", off, singles, k),
        (f"x{k} concurrent, batching on", on, singles, k),
        (f"n={k} one request", on, requests_for(1, args.max_tokens, n=k), 1),
    ]
    if args.serve_rows:
        for batching in (False, True):
            server = EmbeddedServe(batching)
            stack.callback(server.stop)
            await server.complete(ChatRequest.of("Say hello.", max_tokens=4))  # loads the model
            modes.append((f"serve x{k}, batching {'on' if batching else 'off'}", server, singles, k))
    rounds: dict[str, list[Figures]] = {}
    for number in range(args.rounds):
        for mode, target, requests, in_flight in modes:
            if isinstance(target, EmbeddedServe):
                figures = await measure_serve(mode, target, requests)
            else:
                figures = await measure(mode, target, requests, in_flight)
            rounds.setdefault(mode, []).append(figures)
            progress(
                f"round {number + 1}: {mode} {figures.tokens_per_s:.1f} tok/s, {figures.wall_s:.1f} s "
                f"(load {read_loadavg()})"
            )
    return rounds


def read_loadavg() -> str:
    """``/proc/loadavg``'s three averages, as ``cat /proc/loadavg`` shows them."""
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def concurrent_ratios(figures: dict[str, Figures], k: int) -> dict[str, float]:
    """The targets: xK batched against K one at a time (>= 1.8) and against one n=K request (>= 0.85)."""
    on, out = figures.get(f"x{k} concurrent, batching on"), {}
    pairs = [
        (on, f"{k} one at a time", f"x{k} batching on / {k} one at a time"),
        (on, f"x{k} concurrent, batching off", f"x{k} batching on / off"),
        (on, f"n={k} one request", f"x{k} batching on / n={k} one request"),
        (figures.get(f"serve x{k}, batching on"), f"serve x{k}, batching off", f"serve x{k} batching on / off"),
        (figures.get(f"serve x{k}, batching on"), f"n={k} one request", f"serve x{k} batching on / n={k} one request"),
    ]
    for numerator, base, name in pairs:
        if numerator is not None and base in figures and figures[base].tokens_per_s:
            out[name] = numerator.tokens_per_s / figures[base].tokens_per_s
    return out


async def warm(backend: Backend) -> None:
    """Load the model and run both paths once (the batched one measures its thread count here)."""
    await backend.complete(ChatRequest.of("Say hello.", max_tokens=4))
    await backend.complete(ChatRequest.of("Say hello.", max_tokens=4, n=2))


async def throughput(args: argparse.Namespace, stack: AsyncExitStack) -> tuple[dict[str, list[Figures]], dict]:
    """Every mode once per round, modes interleaved, so a burst of load elsewhere hits them all alike."""
    singles = requests_for(args.requests, args.max_tokens)
    grouped = requests_for(args.groups, args.max_tokens, n=args.n)
    modes: list[tuple[str, Backend, list[ChatRequest], int]] = []
    chosen: dict[str, object] = {}
    settings: list[int | None] = [int(t) for t in args.threads.split(",") if t] + [None]
    for count in settings:
        label = f"t={count}" if count is not None else "t=default"
        batched = LlamaCppBackend(n_threads=count)
        one_by_one = LlamaCppBackend(n_threads=count, max_parallel=1)
        for backend in (batched, one_by_one):
            stack.callback(backend.close)
            await warm(backend)
        if count is None:
            chosen = {
                "single_threads": batched.single_threads,
                "batch_threads": batched.batch_threads,
                "measured_s_per_step": {k: round(v, 4) for k, v in batched.thread_timings.items()},
                "single_measured_s_per_step": {k: round(v, 4) for k, v in batched.single_thread_timings.items()},
            }
        modes.append((f"n=1 {label}", batched, singles, 1))
        modes.append((f"n={args.n} sequential {label}", one_by_one, grouped, 1))
        modes.append((f"n={args.n} batched {label}", batched, grouped, 1))
        if args.server and count is not None:
            server = await stack.enter_async_context(managed_llama_server(n_threads=count))
            await server.complete(ChatRequest.of("Say hello.", max_tokens=4))
            modes.append((f"server {label}", server, singles, 1))
            modes.append((f"server x{args.concurrency} {label}", server, singles, args.concurrency))
    rounds: dict[str, list[Figures]] = {}
    for number in range(args.rounds):
        for mode, backend, requests, concurrency in modes:
            figures = await measure(mode, backend, requests, concurrency)
            rounds.setdefault(mode, []).append(figures)
            progress(f"round {number + 1}: {mode} {figures.tokens_per_s:.1f} tok/s")
    return rounds, chosen


async def self_consistency(
    args: argparse.Namespace, stack: AsyncExitStack, questions: list[str]
) -> dict[str, list[float]]:
    """SC@n wall time per SVAMP question with the default backends, alternating which one goes first."""
    backends = {"sequential": LlamaCppBackend(max_parallel=1), "batched": LlamaCppBackend()}
    for backend in backends.values():
        stack.callback(backend.close)
        await warm(backend)
    strategy = SelfConsistency(n=args.n, max_tokens=args.sc_max_tokens)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for index, question in enumerate(questions):
        order = list(backends) if index % 2 == 0 else list(reversed(backends))
        for name in order:
            started = time.perf_counter()
            await strategy.run(question, backend=backends[name])
            times[name].append(time.perf_counter() - started)
            progress(f"SC@{args.n} question {index + 1}: {name} {times[name][-1]:.1f} s")
    return times


def progress(line: str) -> None:
    """One line per measurement on stderr, so a long run shows where it is (and what it had, if stopped)."""
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def median_round(figures: list[Figures]) -> Figures:
    return sorted(figures, key=lambda f: f.tokens_per_s)[len(figures) // 2]


def ratios(figures: list[Figures], n: int) -> dict[str, float]:
    by_mode = {f.mode: f for f in figures}
    out: dict[str, float] = {}
    for mode, fig in by_mode.items():
        if not mode.startswith(f"n={n} batched "):
            continue
        label = mode.rsplit(" ", 1)[1]
        for base in (f"n={n} sequential {label}", f"n=1 {label}"):
            if base in by_mode:
                out[f"batched / {base.rsplit(' ', 1)[0]} ({label})"] = fig.tokens_per_s / by_mode[base].tokens_per_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4, help="n=1 requests per mode (default 4)")
    parser.add_argument("--groups", type=int, default=1, help="n=K requests per mode (default 1)")
    parser.add_argument("--n", type=int, default=8, help="answers per request for the n=K modes (default 8)")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion limit per answer (default 64)")
    parser.add_argument("--threads", default="1,2", help="thread counts besides the default (default 1,2)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over every mode; medians shown (default 3; 0: only SC@n)"
    )
    parser.add_argument("--sc-questions", type=int, default=20, help="SVAMP questions for SC@n (0: skip)")
    parser.add_argument("--sc-max-tokens", type=int, default=192, help="SC@n completion limit (default 192)")
    parser.add_argument("--data-dir", help="where svamp/ is (default: $THINKLOOP_DATA or ../shared/data)")
    parser.add_argument("--server", action="store_true", help="add the managed llama.cpp server modes")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight for 'server xC'")
    parser.add_argument(
        "--concurrent",
        type=int,
        default=8,
        help="single-answer requests in flight for the concurrent table (default 8; 0: skip)",
    )
    parser.add_argument(
        "--concurrent-only", action="store_true", help="only the concurrent table (no thread table, no SC@n)"
    )
    parser.add_argument(
        "--serve-rows",
        action="store_true",
        help="add the concurrent rows through a real 'thinkloop serve' (batching off and on)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    args = parser.parse_args()

    questions = (
        [  # loaded first: a missing data set fails before the long part
            p.question for p in load_dataset("svamp", data_dir=args.data_dir, limit=args.sc_questions).problems
        ]
        if args.sc_questions and not args.concurrent_only
        else []
    )

    async def run() -> tuple[dict[str, list[Figures]], dict, dict[str, list[float]], dict[str, list[Figures]]]:
        async with AsyncExitStack() as stack:
            together = await concurrent(args, stack) if args.concurrent and args.rounds else {}
            rounds, chosen = await throughput(args, stack) if args.rounds and not args.concurrent_only else ({}, {})
            sc = await self_consistency(args, stack, questions) if questions else {}
        return rounds, chosen, sc, together

    load_before = os.getloadavg()
    loadavg_before = read_loadavg()
    started = time.perf_counter()
    rounds, chosen, sc, together = anyio.run(run)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    figures = [median_round(per_mode) for per_mode in rounds.values()]

    print(
        f"SmolLM2-135M-Instruct Q4_1 · {os.cpu_count()} logical cores · load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after · {args.rounds} rounds, median shown · {elapsed:.0f} s in all"
    )
    print(f"/proc/loadavg before: {loadavg_before} · after: {read_loadavg()}")
    concurrent_figures = {mode: median_round(per_mode) for mode, per_mode in together.items()}
    concurrent_computed = concurrent_ratios(concurrent_figures, args.concurrent)
    if concurrent_figures:
        print(f"\n{args.concurrent} single-answer requests (max_tokens {args.max_tokens}, temperature 0.8):")
        print(f"{'mode':<32} {'requests':>8} {'tokens':>7} {'wall s':>8} {'tok/s':>8} {'p50 lat s':>9}  tok/s range")
        for fig in concurrent_figures.values():
            spread = [f.tokens_per_s for f in together[fig.mode]]
            print(f"{fig.row(32)}  {min(spread):.1f}-{max(spread):.1f}")
        for name, value in concurrent_computed.items():
            print(f"{name:<46} {value:6.2f}")
        print()
    computed = ratios(figures, args.n)
    if figures:
        print(
            f"default threads: {chosen.get('single_threads')} for one answer (measured s/step: "
            f"{chosen.get('single_measured_s_per_step')}), {chosen.get('batch_threads')} batched (measured "
            f"s/step: {chosen.get('measured_s_per_step')})"
        )
        print(f"{'mode':<28} {'requests':>8} {'tokens':>7} {'wall s':>8} {'tok/s':>8} {'p50 lat s':>9}  tok/s range")
        for fig in figures:
            spread = [f.tokens_per_s for f in rounds[fig.mode]]
            print(f"{fig.row()}  {min(spread):.1f}-{max(spread):.1f}")
        print()
        for name, value in computed.items():
            print(f"{name:<46} {value:6.2f}")
    sc_summary = {
        name: {"median_s": statistics.median(times), "mean_s": statistics.fmean(times), "questions": len(times)}
        for name, times in sc.items()
    }
    if sc_summary:
        print(
            f"\nSC@{args.n} on {args.sc_questions} SVAMP questions (max_tokens {args.sc_max_tokens}), "
            "wall time per question:"
        )
        for name, summary in sc_summary.items():
            print(f"  {name:<11} median {summary['median_s']:6.2f} s   mean {summary['mean_s']:6.2f} s")
        speedup = sc_summary["sequential"]["median_s"] / sc_summary["batched"]["median_s"]
        per_question = statistics.median(a / b for a, b in zip(sc["sequential"], sc["batched"], strict=True))
        print(f"  sequential / batched: {speedup:.2f} (medians), {per_question:.2f} (median per question)")
    if args.json:
        print(
            json.dumps(
                {
                    "figures": [
                        {
                            "mode": f.mode,
                            "requests": f.requests,
                            "tokens": f.tokens,
                            "wall_s": round(f.wall_s, 3),
                            "tokens_per_s": round(f.tokens_per_s, 2),
                            "p50_latency_s": round(f.p50_latency_s, 3),
                            "tokens_per_s_rounds": [round(r.tokens_per_s, 2) for r in rounds[f.mode]],
                        }
                        for f in figures
                    ],
                    "ratios": {k: round(v, 3) for k, v in computed.items()},
                    "default_threads": chosen,
                    "self_consistency": {
                        name: {
                            "times_s": [round(t, 2) for t in sc[name]],
                            **{k: round(v, 3) for k, v in summary.items()},
                        }
                        for name, summary in sc_summary.items()
                    },
                    "concurrent": [
                        {
                            "mode": f.mode,
                            "requests": f.requests,
                            "tokens": f.tokens,
                            "wall_s": round(f.wall_s, 3),
                            "tokens_per_s": round(f.tokens_per_s, 2),
                            "tokens_per_s_rounds": [round(r.tokens_per_s, 2) for r in together[f.mode]],
                        }
                        for f in concurrent_figures.values()
                    ],
                    "concurrent_ratios": {k: round(v, 3) for k, v in concurrent_computed.items()},
                    "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
                }
            )
        )


if __name__ == "__main__":
    main()
