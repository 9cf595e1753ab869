"""``thinkloop serve`` throughput: self-consistency through the server against the raw client's ``n=8``.

In one run, against one mock OpenAI-compatible server in its own process (200 ms a reply, honouring ``n``),
it answers the same questions two ways, with at most ``--concurrency`` requests in flight:

  raw-n   the raw ``openai`` client straight to the mock: one request with ``n=8`` per question, majority vote
  serve   the raw ``openai`` client to ``thinkloop serve`` (its own process), asking for
          ``thinkloop[sc:n=8]``; the server runs self-consistency against the same mock

and reads the server process's CPU time (``/proc/PID/stat``) and peak RSS (``VmHWM`` in ``/proc/PID/status``).
It prints a table and, as its last line, one JSON object: the wall-time ratio serve / raw-n, the server's
peak RSS and CPU per question, with the targets (<= 1.2x, <= 200 MB, <= 10 ms). Repeats take the median.

Run: ``python benchmarks/serve_throughput.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import openai

from thinkloop.strategies.base import STEP_BY_STEP_SYSTEM
from thinkloop.testing import MockConfig, MockServerProcess, right_answer

TARGETS = {"wall_ratio": 1.2, "peak_rss_mb": 200.0, "cpu_ms_per_question": 10.0}
_ANSWER = re.compile(r"answer is\s*(-?\d+)", re.IGNORECASE)
_TICKS = os.sysconf("SC_CLK_TCK")


def make_questions(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < count:
        pairs.add((rng.randint(10, 9999), rng.randint(10, 9999)))
    return [f"What is {a} + {b}?" for a, b in sorted(pairs)]


class ServeProcess:
    """``thinkloop serve`` in front of ``base_url``, on a free loopback port."""

    def __init__(self, base_url: str, *args: str) -> None:
        command = [
            sys.executable,
            "-m",
            "thinkloop",
            "serve",
            "--port",
            "0",
            "--base-url",
            base_url,
            "--model",
            "mock",
            *args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"thinkloop serve did not start: {line!r}")
        self.url = line.split()[-1]

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime

    def status_mb(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def _each(questions: list[str], concurrency: int, one: Callable[[str], Awaitable[None]]) -> float:
    limiter = anyio.CapacityLimiter(concurrency)

    async def bounded(question: str) -> None:
        async with limiter:
            await one(question)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for question in questions:
            group.start_soon(bounded, question)
    return time.perf_counter() - started


async def raw_n(base_url: str, questions: list[str], n: int, concurrency: int) -> tuple[float, dict[str, str]]:
    answers: dict[str, str] = {}
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:

        async def one(question: str) -> None:
            reply = await client.chat.completions.create(
                model="mock",
                n=n,
                temperature=0.7,
                max_tokens=512,
                messages=[{"role": "system", "content": STEP_BY_STEP_SYSTEM}, {"role": "user", "content": question}],
            )
            votes = Counter(m.group(1) for c in reply.choices if (m := _ANSWER.search(c.message.content or "")))
            answers[question] = votes.most_common(1)[0][0] if votes else ""

        await one("What is 1 + 1?")  # warm the connection pool
        return await _each(questions, concurrency, one), answers


async def through_serve(url: str, questions: list[str], n: int, concurrency: int) -> tuple[float, dict[str, str]]:
    answers: dict[str, str] = {}
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:

        async def one(question: str) -> None:
            reply = await client.chat.completions.create(
                model=f"thinkloop[sc:n={n}]",
                messages=[{"role": "user", "content": question}],
            )
            answers[question] = reply.thinkloop["answer"] or ""  # type: ignore[attr-defined]

        return await _each(questions, concurrency, one), answers


async def warm_up(url: str, n: int) -> None:
    """First requests load what a run needs (strategies, answer extraction): not part of the measurement."""
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        for question in ("What is 1 + 1?", "What is 2 + 2?"):
            await client.chat.completions.create(
                model=f"thinkloop[sc:n={n}]", messages=[{"role": "user", "content": question}]
            )


def right_share(answers: dict[str, str]) -> float:
    return sum(answers[q] == str(right_answer(q)) for q in answers) / len(answers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 questions, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.repeats = 40, 1
    questions = make_questions(args.questions)
    raw_walls, serve_walls, cpu_per_q, raw_right, serve_right = [], [], [], [], []
    with MockServerProcess(MockConfig(latency=args.latency)) as mock:
        server = ServeProcess(mock.base_url, "--max-concurrency", str(4 * args.concurrency))
        try:
            anyio.run(warm_up, server.url, args.n)
            for _ in range(args.repeats):
                mock.reset()
                wall, answers = anyio.run(raw_n, mock.base_url, questions, args.n, args.concurrency)
                raw_walls.append(wall)
                raw_right.append(right_share(answers))
                mock.reset()  # the same answers again for the same questions
                cpu_before = server.cpu_s()
                wall, answers = anyio.run(through_serve, server.url, questions, args.n, args.concurrency)
                cpu_per_q.append(1000 * (server.cpu_s() - cpu_before) / len(questions))
                serve_walls.append(wall)
                serve_right.append(right_share(answers))
            peak_rss = server.status_mb("VmHWM")
        finally:
            server.stop()
    raw_wall, serve_wall = statistics.median(raw_walls), statistics.median(serve_walls)
    out = {
        "benchmark": "serve_throughput",
        "questions": args.questions,
        "n": args.n,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "repeats": args.repeats,
        "raw_n_wall_s": round(raw_wall, 3),
        "serve_wall_s": round(serve_wall, 3),
        "wall_ratio": round(serve_wall / raw_wall, 3),
        "peak_rss_mb": round(peak_rss, 1),
        "cpu_ms_per_question": round(statistics.median(cpu_per_q), 2),
        "right_share": {
            "raw_n": round(statistics.median(raw_right), 3),
            "serve": round(statistics.median(serve_right), 3),
        },
        "targets": TARGETS,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    out["meets_targets"] = {key: out[key] <= limit for key, limit in TARGETS.items()}
    print(f"{'mode':8} {'wall s':>8} {'right':>6}")
    print(f"{'raw-n':8} {raw_wall:8.3f} {out['right_share']['raw_n']:6.3f}")
    print(
        f"{'serve':8} {serve_wall:8.3f} {out['right_share']['serve']:6.3f}   server: peak RSS "
        f"{out['peak_rss_mb']} MB, {out['cpu_ms_per_question']} ms CPU per question"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
