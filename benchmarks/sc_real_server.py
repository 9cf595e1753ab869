"""Self-consistency on a real server: thinkloop against the raw ``openai`` client on the managed llama.cpp server.

The embedded SmolLM2-135M runs behind ``python -m llama_cpp.server`` (started and stopped by
``thinkloop.backends.server.managed_llama_server``). That server ignores ``n`` and serves one request at a
time, so the raw client's best plan is ``n`` separate requests per question; it runs at each concurrency in
``--raw-concurrency`` and the fastest counts. thinkloop runs ``SelfConsistency(n=8)`` through the managed
server's backend, which knows both limits. The plans take turns question by question, so load from other
processes falls on each alike. Sampled replies differ in length from run to run, so besides wall time the
figure to compare is wall milliseconds per completion token.

A handful of questions only (the model is far too weak for accuracy claims, and the CPU is shared):
``python benchmarks/sc_real_server.py`` takes about a minute on two cores. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio
import openai

from thinkloop import Engine
from thinkloop.backends.server import managed_llama_server
from thinkloop.strategies.base import STEP_BY_STEP_SYSTEM
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.verifiers.extract import answers_equivalent

QUESTIONS = (
    "What is 12 + 30?",
    "What is 7 times 8?",
    "Tom has 5 apples and buys 3 more. How many apples does he have?",
    "What is 100 - 37?",
)
TEMPERATURE = 0.7
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class Run:
    """One plan's totals over every question (and repeat)."""

    label: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    requests: int = 0
    completion_tokens: int = 0
    answers: list[str | None] = field(default_factory=list)

    @property
    def ms_per_token(self) -> float:
        return 1000 * self.wall_s / max(self.completion_tokens, 1)

    def add(self, wall_s: float, cpu_s: float, requests: int, tokens: int, answer: str | None) -> None:
        self.wall_s += wall_s
        self.cpu_s += cpu_s
        self.requests += requests
        self.completion_tokens += tokens
        self.answers.append(answer)


def _messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": STEP_BY_STEP_SYSTEM}, {"role": "user", "content": question}]


async def raw_question(
    client: openai.AsyncOpenAI, model: str, question: str, n: int, max_tokens: int, concurrency: int, run: Run
) -> None:
    """``n`` separate requests (the server ignores ``n``), ``concurrency`` in flight, then a plain vote."""
    limiter = anyio.CapacityLimiter(concurrency)
    texts: list[str] = []
    tokens = 0

    async def one() -> None:
        nonlocal tokens
        async with limiter:
            response = await client.chat.completions.create(
                model=model, messages=_messages(question), temperature=TEMPERATURE, max_tokens=max_tokens
            )
        texts.append(response.choices[0].message.content or "")
        tokens += response.usage.completion_tokens if response.usage else 0

    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(one)
    answers = [m[-1] for t in texts if (m := _NUMBER.findall(t))]
    answer = Counter(answers).most_common(1)[0][0] if answers else None
    run.add(time.perf_counter() - wall, time.process_time() - cpu, n, tokens, answer)


async def thinkloop_question(engine: Engine, strategy: SelfConsistency, question: str, run: Run) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    result = await engine.run(strategy, question)
    run.add(
        time.perf_counter() - wall,
        time.process_time() - cpu,
        result.usage.calls,
        result.usage.completion_tokens,
        result.answer,
    )


async def measure(args: argparse.Namespace) -> dict[str, object]:
    questions = list(QUESTIONS[: args.questions])
    async with managed_llama_server(n_threads=args.threads) as backend:
        client = openai.AsyncOpenAI(base_url=backend.base_url, api_key="not-needed", max_retries=0, timeout=600)
        try:
            # Warm up the server, and ask it for two choices to see whether it honours n.
            probe = await client.chat.completions.create(
                model=backend.name, messages=_messages("Say hi."), n=2, max_tokens=4
            )
            honours_n = len(probe.choices) == 2
            print(
                f"the server returned {len(probe.choices)} of 2 choices: it "
                f"{'honours' if honours_n else 'ignores'} n, so the raw client sends "
                f"{'one request with n' if honours_n else 'n separate requests'} per question"
            )
            # One-time costs outside the timing, as the raw client's warm-up request above: the vote's math
            # equivalence (sympy through math-verify) loads on first use, and so does the rest of the path.
            for messy, number in (("12 + 3 * 6 =", "30"), ("x + 1", "2"), ("\\frac{1}{2}", "0.5")):
                answers_equivalent(messy, number)  # about 0.5 s of CPU the first time, then milliseconds
            engine = Engine(backend)
            await engine.run(SelfConsistency(n=2, max_tokens=8, temperature=TEMPERATURE), "Say hi.")
            strategy = SelfConsistency(n=args.n, max_tokens=args.max_tokens, temperature=TEMPERATURE)
            raws = {c: Run(f"raw openai, {args.n} requests/question, {c} in flight") for c in args.raw_concurrency}
            sc = Run(f"thinkloop SelfConsistency(n={args.n}), engine limit {backend.capabilities.max_concurrency}")
            # Plans take turns question by question, so the load from other processes hits each alike.
            for _ in range(args.repeats):
                for question in questions:
                    for concurrency, run in raws.items():
                        await raw_question(client, backend.name, question, args.n, args.max_tokens, concurrency, run)
                    await thinkloop_question(engine, strategy, question, sc)
        finally:
            await client.close()
    for run in (*raws.values(), sc):
        print(_line(run))
    best = min(raws.values(), key=lambda r: r.ms_per_token)
    print(f"thinkloop's votes: {dict(zip(questions, sc.answers, strict=False))} (a 135M model: plumbing, not accuracy)")
    return {
        "benchmark": "sc_real_server",
        "model": backend.name,
        "questions": len(questions),
        "n": args.n,
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "server_threads": args.threads,
        "server_honours_n": honours_n,
        "raw_best": best.label,
        "raw_wall_s": round(best.wall_s, 3),
        "sc_wall_s": round(sc.wall_s, 3),
        "raw_completion_tokens": best.completion_tokens,
        "sc_completion_tokens": sc.completion_tokens,
        "raw_requests": best.requests,
        "sc_requests": sc.requests,
        "wall_ratio_vs_raw": round(sc.wall_s / best.wall_s, 3),
        "ms_per_token_ratio_vs_raw": round(sc.ms_per_token / best.ms_per_token, 3),
        "cpu_ratio_vs_raw": round(sc.cpu_s / best.cpu_s, 3),
    }


def _line(run: Run) -> str:
    return (
        f"{run.label}: {run.wall_s:.2f} s wall, {run.requests} requests, {run.completion_tokens} completion "
        f"tokens, {run.ms_per_token:.1f} ms/token, client CPU {run.cpu_s * 1000:.0f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=4, help=f"at most {len(QUESTIONS)}")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="server threads (1 is steadier on a shared CPU, where llama.cpp's threads wait on each other)",
    )
    parser.add_argument(
        "--raw-concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="requests in flight for the raw client, comma separated; the best counts",
    )
    args = parser.parse_args(argv)
    summary = anyio.run(measure, args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
