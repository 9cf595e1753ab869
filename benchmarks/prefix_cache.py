"""The in-process prefix cache on the loops that re-prompt: the embedded SmolLM2-135M with the cache on and off.

Issue 29's rows, each run on the same questions with both backends (fresh ones for each loop), alternating which
goes first:

  cot:max_rounds=6       chain of thought re-prompted with a check's feedback (``ask --check``): a check that
                         never accepts, so every run spends all its rounds
  critique:max_rounds=3  answer, then three revisions, each from the verifier's feedback (the same failing check)
  critique, model critic the same with the model as its own critic (no verifier: it may stop at 'NO ISSUES')
  tree                   tree search (beam, 3 proposals per expansion, the model values each partial solution)
  cot-last, critique-last  (not run by default) the same loops with ``history=last``, the strategies' default:
                         each prompt holds only the latest attempt, so it does not extend the previous one;
                         fewer tokens sent

The cot and critique rows run with ``history=all``: every loop's prompt then extends an earlier one (the strategies
append new turns and steps at the end), which is what the cache reuses. Sampling is reproducible so that the two
backends are asked exactly the same prompts and must give the same answers (``same answers``; a prefix cache that
changed a reply would show here): cot and critique are greedy, and every request without a seed gets one derived
from its messages (tree search samples its proposals at temperature 0.8). For each loop and backend: wall time,
completion tokens per second of wall time, prompt tokens sent, reused from the cache (``cached_prompt_tokens``) and
evaluated (sent less reused); then the ratios on/off and whether the issue's target (evaluated <= 50% of sent)
holds. The machine's load changes the seconds, so the ratios of the same run matter, and the load average is printed
with them.

Run: ``python benchmarks/prefix_cache.py`` (``--questions 2 --max-tokens 64``; ``--loops cot,tree`` for some;
``--json`` for machine-readable figures).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from dataclasses import asdict, dataclass, field

import anyio

from thinkloop import LlamaCppBackend
from thinkloop.strategies.registry import build_strategy
from thinkloop.types import ChatRequest, Completion
from thinkloop.verifiers import MathAnswerVerifier

QUESTIONS = [
    "Tom has 3 apples and buys 2 more. How many apples does he have?",
    "A train travels 60 km in one hour. How far does it travel in 3 hours?",
    "Sara had 12 pencils and gave 5 to her friend. How many pencils does she have left?",
    "A box holds 6 eggs. How many eggs are in 4 boxes?",
]
NEVER = "-987654321"  # no question's answer: the check never accepts, so every loop runs all its rounds
TARGET = 0.5
"""Issue 29: prompt tokens evaluated <= 50% of those sent, for each loop."""


class SeededBackend(LlamaCppBackend):
    """Gives every request without a seed one derived from its messages, so both backends sample alike."""

    async def complete(self, request: ChatRequest) -> Completion:
        if request.seed is None:
            request = request.model_copy(update={"seed": zlib.crc32(repr(request.messages).encode())})
        return await super().complete(request)


@dataclass
class Tally:
    wall_s: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    answers: list[str] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0


async def run_loop(spec: str, checked: bool, backend: LlamaCppBackend, question: str, tally: Tally) -> None:
    strategy = build_strategy(spec)
    started = time.perf_counter()
    result = await strategy.run(question, backend=backend, verifier=MathAnswerVerifier(NEVER) if checked else None)
    tally.wall_s += time.perf_counter() - started
    tally.calls += result.usage.calls
    tally.prompt_tokens += result.usage.prompt_tokens
    tally.cached_tokens += result.usage.cached_prompt_tokens
    tally.completion_tokens += result.usage.completion_tokens
    tally.answers.append(f"{result.answer} ({result.stop_reason})")


def loops(args: argparse.Namespace) -> dict[str, tuple[str, bool]]:
    """Name -> (spec, whether the never-accepting check runs)."""
    greedy = f"max_tokens={args.max_tokens},temperature=0"
    return {
        "cot": (f"cot:max_rounds={args.cot_rounds},history=all,{greedy}", True),
        "critique": (f"critique:max_rounds={args.critique_rounds},history=all,{greedy}", True),
        "critique-model": (f"critique:max_rounds={args.critique_rounds},critic=model,history=all,{greedy}", False),
        # The default prompt (only the latest attempt in each prompt), to compare what is sent and evaluated:
        "cot-last": (f"cot:max_rounds={args.cot_rounds},history=last,{greedy}", True),
        "critique-last": (f"critique:max_rounds={args.critique_rounds},history=last,{greedy}", True),
        "tree": (
            f"tree:mode=beam,branching=3,beam_width=2,max_depth={args.tree_depth},max_tokens={args.max_tokens}",
            True,
        ),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--cot-rounds", type=int, default=6)
    parser.add_argument("--critique-rounds", type=int, default=3)
    parser.add_argument("--tree-depth", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--loops", default="cot,critique,critique-model,tree", help="which loops, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="the same fixed count for both backends")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    every = loops(args)
    chosen = [name.strip() for name in args.loops.split(",")]
    unknown = [name for name in chosen if name not in every]
    if unknown:
        parser.error(f"unknown loop {unknown[0]!r}; choose from {', '.join(every)}")
    load_before = os.getloadavg()
    figures: dict[str, dict[str, Tally]] = {}
    for name in chosen:
        spec, checked = every[name]
        # Fresh backends for each loop: one loop's prompts must not warm the cache for the next.
        backends = {
            "off": SeededBackend(n_threads=args.threads, prefix_cache_bytes=0),
            "on": SeededBackend(n_threads=args.threads),
        }
        for backend in backends.values():
            await backend.load()
        tallies = {"off": Tally(), "on": Tally()}
        for index, question in enumerate(QUESTIONS[: args.questions]):
            for mode in ["off", "on"] if index % 2 == 0 else ["on", "off"]:
                await run_loop(spec, checked, backends[mode], question, tallies[mode])
        for backend in backends.values():
            await backend.aclose()
        figures[spec] = tallies
    load_after = os.getloadavg()

    if args.json:
        print(
            json.dumps(
                {
                    spec: {
                        mode: {**asdict(t), "evaluated": t.evaluated, "tokens_per_s": t.tokens_per_s}
                        for mode, t in tallies.items()
                    }
                    for spec, tallies in figures.items()
                }
                | {"loadavg": [load_before, load_after]},
                indent=2,
            )
        )
        return
    print(
        f"SmolLM2-135M in-process, {args.threads} thread(s), {args.questions} question(s), "
        f"max_tokens={args.max_tokens}, load average {load_before[0]:.2f} -> {load_after[0]:.2f}"
    )
    print(
        f"{'loop':<62} {'cache':<5} {'calls':>5} {'wall s':>7} {'tok/s':>6} {'sent':>6} {'reused':>6} {'evaluated':>9}"
    )
    for spec, tallies in figures.items():
        for mode, t in tallies.items():
            print(
                f"{spec:<62} {mode:<5} {t.calls:>5} {t.wall_s:>7.2f} {t.tokens_per_s:>6.1f} {t.prompt_tokens:>6} "
                f"{t.cached_tokens:>6} {t.evaluated:>9}"
            )
        before, after = tallies["off"], tallies["on"]
        share = after.evaluated / max(1, after.prompt_tokens)
        speed = after.tokens_per_s / max(1e-9, before.tokens_per_s)
        print(
            f"  on/off: wall {after.wall_s / before.wall_s:.2f}x, tok/s {speed:.2f}x, "
            f"prompt tokens evaluated {after.evaluated / max(1, before.evaluated):.2f}x ({share:.0%} of those sent: "
            f"target <= {TARGET:.0%} {'met' if share <= TARGET else 'MISSED'}), "
            f"same answers: {'yes' if before.answers == after.answers else 'NO'}"
        )


if __name__ == "__main__":
    anyio.run(main)
