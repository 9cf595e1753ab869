"""``thinkloop serve`` under load: the error rate of many requests at once, and scaling with ``--workers``.

In one run, against one mock OpenAI-compatible server in its own process, it sends ``--requests`` chat
completions with at most ``--in-flight`` at a time through the raw ``openai`` client with no retries (so
every transport error shows), first straight to the mock (the baseline), then through ``thinkloop serve``
with 1 worker and with ``--workers`` workers. It prints, per mode, the wall time, requests per second and the
errors by kind; the last line is one JSON object. The issue found 0.35% ``ReadError``s through serve: the
server's keep-alive timeout (uvicorn's 5 s) equal to the client pool's (httpx: 5 s), so a client could reuse a
connection the server was closing; ``--keep-alive-seconds`` now defaults to 75.

Run: ``python benchmarks/serve_load.py`` (``--requests 1000 --in-flight 64 --workers 2``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter

import anyio
import openai
from serve_throughput import ServeProcess  # a sibling script: python benchmarks/serve_load.py

from thinkloop.testing import MockConfig, MockServerProcess


async def load(url: str, model: str, requests: int, in_flight: int) -> tuple[float, Counter[str]]:
    errors: Counter[str] = Counter()
    limiter = anyio.CapacityLimiter(in_flight)
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60) as client:

        async def one(i: int) -> None:
            async with limiter:
                try:
                    await client.chat.completions.create(
                        model=model, max_tokens=64, messages=[{"role": "user", "content": f"What is {i} + 7?"}]
                    )
                except openai.APIError as exc:
                    cause = exc.__cause__
                    errors[type(cause).__name__ if cause is not None else type(exc).__name__] += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for i in range(requests):
                group.start_soon(one, i)
    return time.perf_counter() - started, errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--strategy", default="sc:n=4")
    args = parser.parse_args(argv)
    rows = {}
    with MockServerProcess(MockConfig(latency=args.latency, p_right=1.0)) as mock:
        wall, errors = anyio.run(load, mock.base_url, "mock", args.requests, args.in_flight)
        rows["upstream"] = (wall, errors)
        for workers in sorted({1, args.workers}):
            server = ServeProcess(mock.base_url, "--max-concurrency", "256", "--workers", str(workers))
            try:
                anyio.run(load, server.url, f"thinkloop[{args.strategy}]", 20, 4)  # warm every worker
                rows[f"serve x{workers}"] = anyio.run(
                    load, server.url, f"thinkloop[{args.strategy}]", args.requests, args.in_flight
                )
            finally:
                server.stop()
    out = {
        "benchmark": "serve_load",
        "requests": args.requests,
        "in_flight": args.in_flight,
        "strategy": args.strategy,
        "latency_s": args.latency,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "modes": {},
    }
    print(f"{'mode':12} {'wall s':>8} {'req/s':>8} {'errors':>7}  kinds")
    for mode, (wall, errors) in rows.items():
        total = sum(errors.values())
        print(f"{mode:12} {wall:8.2f} {args.requests / wall:8.1f} {total:7d}  {dict(errors)}")
        out["modes"][mode] = {
            "wall_s": round(wall, 3),
            "per_s": round(args.requests / wall, 1),
            "error_rate": total / args.requests,
            "errors": dict(errors),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
