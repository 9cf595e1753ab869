"""The in-process prefix cache on loops that re-prompt: the embedded SmolLM2-135M with the cache on and off.

Two loops, each run on the same questions with both backends (fresh ones for each loop), alternating which
goes first:

  cot:max_rounds=R     chain of thought re-prompted with a check's feedback (``ask --check``): a check that
                       never accepts, so every run spends all R rounds
  critique:max_rounds=K  answer, then K revisions, each from the verifier's feedback (the same failing check)

Both use ``temperature=0`` (greedy): the two backends are asked exactly the same prompts and must give the same
answers (printed as ``same answers``; a prefix cache that changed a reply would show here). For each loop and
backend: wall time, prompt tokens sent, prompt tokens reused from the cache (``cached_prompt_tokens``) and
evaluated (sent less reused); then the ratios on/off. The machine's load changes the seconds, so the ratios of
the same run matter, and the load average is printed with them.

Run: ``python benchmarks/prefix_cache.py`` (``--questions 2 --rounds 4 --max-tokens 96``; ``--json`` for
machine-readable figures).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field

import anyio

from thinkloop import LlamaCppBackend
from thinkloop.strategies.registry import build_strategy
from thinkloop.verifiers import MathAnswerVerifier

QUESTIONS = [
    "Tom has 3 apples and buys 2 more. How many apples does he have?",
    "A train travels 60 km in one hour. How far does it travel in 3 hours?",
    "Sara had 12 pencils and gave 5 to her friend. How many pencils does she have left?",
    "A box holds 6 eggs. How many eggs are in 4 boxes?",
]
NEVER = "-987654321"  # no question's answer: the check never accepts, so every loop runs all its rounds


@dataclass
class Tally:
    wall_s: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    answers: list[str] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return self.prompt_tokens - self.cached_tokens


async def run_loop(spec: str, backend: LlamaCppBackend, question: str, tally: Tally) -> None:
    strategy = build_strategy(spec)
    started = time.perf_counter()
    result = await strategy.run(question, backend=backend, verifier=MathAnswerVerifier(NEVER))
    tally.wall_s += time.perf_counter() - started
    tally.calls += result.usage.calls
    tally.prompt_tokens += result.usage.prompt_tokens
    tally.cached_tokens += result.usage.cached_prompt_tokens
    tally.answers.append(result.answer or "")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="cot rounds; critique gets one fewer revisions")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1, help="the same fixed count for both backends")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    sampling = f"max_tokens={args.max_tokens},temperature=0"
    loops = [
        f"cot:max_rounds={args.rounds},{sampling}",
        f"critique:max_rounds={args.rounds - 1},{sampling}",
    ]
    load_before = os.getloadavg()
    figures = {}
    for spec in loops:
        # Fresh backends for each loop: one loop's prompts must not warm the cache for the next.
        backends = {"off": LlamaCppBackend(n_threads=args.threads, prefix_cache_bytes=0),
                    "on": LlamaCppBackend(n_threads=args.threads)}
        for backend in backends.values():
            await backend.load()
        tallies = {"off": Tally(), "on": Tally()}
        for index, question in enumerate(QUESTIONS[:args.questions]):
            for mode in ["off", "on"] if index % 2 == 0 else ["on", "off"]:
                await run_loop(spec, backends[mode], question, tallies[mode])
        for backend in backends.values():
            await backend.aclose()
        figures[spec] = tallies
    load_after = os.getloadavg()

    if args.json:
        print(json.dumps({
            spec: {mode: {**asdict(t), "evaluated": t.evaluated} for mode, t in tallies.items()}
            for spec, tallies in figures.items()
        } | {"loadavg": [load_before, load_after]}, indent=2))
        return
    print(f"SmolLM2-135M in-process, {args.threads} thread(s), {args.questions} question(s), "
          f"max_tokens={args.max_tokens}, load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print(f"{'loop':<42} {'cache':<5} {'calls':>5} {'wall s':>7} {'sent':>6} {'reused':>6} {'evaluated':>9}")
    for spec, tallies in figures.items():
        for mode, t in tallies.items():
            print(f"{spec:<42} {mode:<5} {t.calls:>5} {t.wall_s:>7.2f} {t.prompt_tokens:>6} {t.cached_tokens:>6} "
                  f"{t.evaluated:>9}")
        before, after = tallies["off"], tallies["on"]
        print(f"  on/off: wall {after.wall_s / before.wall_s:.2f}x, prompt tokens evaluated "
              f"{after.evaluated / max(1, before.evaluated):.2f}x ({after.evaluated / max(1, after.prompt_tokens):.0%}"
              f" of those sent), same answers: {'yes' if before.answers == after.answers else 'NO'}")


if __name__ == "__main__":
    anyio.run(main)
