"""Tokens per second of the embedded SmolLM2-135M: in-process, through the managed llama.cpp server, and the
server with one request at a time against several at once.

Every mode generates the same requests (same prompts, temperature and ``max_tokens``) after one warm-up request,
once per round with the modes interleaved; the table shows each mode's median round:

  in-process            LlamaCppBackend, one request after another
  in-process n=K        LlamaCppBackend, K choices per request (the prompt is evaluated once)
  server                managed_llama_server through the openai SDK, one request after another
  server xC             the same server, C requests in flight at once (sent straight to the backend, so
                        the server, not thinkloop's limiter, decides what runs in parallel)

Throughput is completion tokens over wall-clock seconds for the whole batch; latency is per request. The
figures depend on the CPU and on whatever else runs on it, so the load average is printed with them.

Run: ``python benchmarks/backend_throughput.py`` (``--requests 4 --max-tokens 32 --rounds 1`` for a quick
look; ``--threads 1,2`` compares thread counts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio

from thinkloop import ChatRequest, LlamaCppBackend, managed_llama_server
from thinkloop.backends.base import Backend
from thinkloop.backends.llamacpp import default_threads

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

    def row(self) -> str:
        return (f"{self.mode:<26} {self.requests:>8} {self.tokens:>7} {self.wall_s:>8.2f} "
                f"{self.tokens_per_s:>8.1f} {self.p50_latency_s:>9.2f}")


def requests_for(count: int, max_tokens: int, n: int = 1) -> list[ChatRequest]:
    return [
        # No seed: a seeded in-process request re-evaluates its prompt to reproduce exactly (a cost the
        # server does not pay, nor promise), and the point here is the everyday path.
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


async def run(args: argparse.Namespace) -> dict[str, list[Figures]]:
    """Every mode once per round, modes interleaved, so a burst of load elsewhere hits them all alike."""
    batch = requests_for(args.requests, args.max_tokens)
    grouped = requests_for(max(1, args.requests // args.n), args.max_tokens, n=args.n)
    threads = [int(t) for t in args.threads.split(",")] if args.threads else [default_threads()]
    modes: list[tuple[str, Backend, list[ChatRequest], int]] = []
    rounds: dict[str, list[Figures]] = {}
    async with AsyncExitStack() as stack:
        for count in threads:
            local = LlamaCppBackend(n_threads=count)
            stack.callback(local.close)
            server = await stack.enter_async_context(managed_llama_server(n_threads=count))
            for backend in (local, server):  # warm-up: load, first evaluation
                await backend.complete(ChatRequest.of("Say hello.", max_tokens=4))
            modes.append((f"in-process t={count}", local, batch, 1))
            if args.n > 1:
                modes.append((f"in-process n={args.n} t={count}", local, grouped, 1))
            modes.append((f"server t={count}", server, batch, 1))
            modes.append((f"server x{args.concurrency} t={count}", server, batch, args.concurrency))
        for _ in range(args.rounds):
            for mode, backend, requests, concurrency in modes:
                rounds.setdefault(mode, []).append(await measure(mode, backend, requests, concurrency))
    return rounds


def median_round(figures: list[Figures]) -> Figures:
    return sorted(figures, key=lambda f: f.tokens_per_s)[len(figures) // 2]


def ratios(figures: list[Figures]) -> dict[str, float]:
    by_mode = {f.mode: f for f in figures}
    out: dict[str, float] = {}
    for mode, fig in by_mode.items():
        if not mode.startswith("in-process t="):
            continue
        suffix = mode.removeprefix("in-process ")
        server = by_mode.get(f"server {suffix}")
        if server is not None:
            out[f"server / in-process ({suffix})"] = server.tokens_per_s / fig.tokens_per_s
        for other in by_mode.values():
            if other.mode.startswith("in-process n=") and other.mode.endswith(suffix):
                out[f"{other.mode.removeprefix('in-process ')} / n=1 ({suffix})"] = (
                    other.tokens_per_s / fig.tokens_per_s
                )
    for mode, fig in by_mode.items():
        if mode.startswith("server x"):
            suffix = mode.split(" ", 2)[2]
            single = by_mode.get(f"server {suffix}")
            if single is not None:
                width = mode.split(" ")[1]
                out[f"server {width} / x1 throughput ({suffix})"] = fig.tokens_per_s / single.tokens_per_s
                out[f"server {width} / x1 p50 latency ({suffix})"] = fig.p50_latency_s / single.p50_latency_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8, help="requests per mode (default 8)")
    parser.add_argument("--max-tokens", type=int, default=96, help="completion limit per request (default 96)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight for 'server xC'")
    parser.add_argument("--n", type=int, default=4, help="choices per request for 'in-process n=K' (1: skip)")
    parser.add_argument("--threads", help="comma-separated thread counts (default: the library's default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every mode; medians shown (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    rounds = anyio.run(run, args)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    figures = [median_round(per_mode) for per_mode in rounds.values()]

    print(f"SmolLM2-135M-Instruct Q4_1 · {os.cpu_count()} logical cores · load average {load_before[0]:.1f} "
          f"before, {load_after[0]:.1f} after · {args.rounds} rounds, median shown · {elapsed:.0f} s in all")
    print(f"{'mode':<26} {'requests':>8} {'tokens':>7} {'wall s':>8} {'tok/s':>8} {'p50 lat s':>9}  tok/s range")
    for fig in figures:
        spread = [f.tokens_per_s for f in rounds[fig.mode]]
        print(f"{fig.row()}  {min(spread):.1f}-{max(spread):.1f}")
    print()
    computed = ratios(figures)
    for name, value in computed.items():
        print(f"{name:<46} {value:6.2f}")
    if args.json:
        print(json.dumps({
            "figures": [
                {"mode": f.mode, "requests": f.requests, "tokens": f.tokens, "wall_s": round(f.wall_s, 3),
                 "tokens_per_s": round(f.tokens_per_s, 2), "p50_latency_s": round(f.p50_latency_s, 3),
                 "tokens_per_s_rounds": [round(r.tokens_per_s, 2) for r in rounds[f.mode]]}
                for f in figures
            ],
            "ratios": {k: round(v, 3) for k, v in computed.items()},
            "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        }))


if __name__ == "__main__":
    main()
