"""The simulated model: its closed-form majority-vote accuracy is exact, and the report's self-consistency
curve measured on it through the whole stack (runner, engine, vote, report) lands inside its intervals."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkloop.bench.report import sc_curves, summarize
from thinkloop.bench.runner import run_benchmark
from thinkloop.bench.simulated import (
    SimulatedBackend,
    Spread,
    majority_vote_accuracy,
    simulated_dataset,
    spread_of,
)
from thinkloop.bench.store import read_records
from thinkloop.runtime.result import Candidate
from thinkloop.strategies.vote import majority_vote
from thinkloop.types import ChatRequest


def brute_force(k: int, spread: Spread, gold: int = 500) -> float:
    """Enumerate every sequence of k answers and ask the real vote who wins."""
    probs = spread.probabilities()
    total = 0.0
    for offsets in itertools.product(sorted(probs), repeat=k):
        candidates = [Candidate(text="", answer=str(gold + o)) for o in offsets]
        winner = majority_vote(candidates).winner
        if winner is not None and winner.representative == str(gold):
            total += math.prod(probs[o] for o in offsets)
    return total


@settings(max_examples=15)
@given(p=st.floats(0.05, 0.95), k=st.integers(1, 5))
def test_the_closed_form_matches_the_real_vote_over_every_sequence(p: float, k: int) -> None:
    spread = Spread(p=p)
    assert majority_vote_accuracy(k, spread) == pytest.approx(brute_force(k, spread), abs=1e-12)


def test_the_closed_form_with_a_custom_spread_and_its_simple_cases() -> None:
    spread = Spread(p=0.3, wrong=((-2, 1.0), (3, 1.0)))
    assert majority_vote_accuracy(1, spread) == pytest.approx(0.3)
    assert majority_vote_accuracy(4, spread) == pytest.approx(brute_force(4, spread), abs=1e-12)
    assert majority_vote_accuracy(7, Spread(p=1.0)) == 1.0


def test_draws_are_deterministic_per_seed_and_follow_p() -> None:
    dataset = simulated_dataset(400)

    async def answers(seed: int) -> list[str]:
        backend = SimulatedBackend.for_dataset(dataset, p=0.7, seed=seed)
        out = []
        for problem in dataset.problems:
            completion = await backend.complete(ChatRequest.of(problem.question))
            out.append(completion.text)
        return out

    first, again, other = anyio.run(answers, 1), anyio.run(answers, 1), anyio.run(answers, 2)
    assert first == again and first != other
    right = sum(text.endswith(f"is {p.answer}.") for text, p in zip(first, dataset.problems, strict=True))
    assert 0.62 < right / 400 < 0.78


def test_a_simulated_model_names_its_p() -> None:
    backend = SimulatedBackend({}, p=0.55)
    assert backend.name == "simulated(p=0.55)"
    assert spread_of(backend.name) == Spread(p=0.55)
    assert spread_of("gpt-4o") is None


def test_the_reported_sc_curve_matches_the_closed_form_within_its_intervals(tmp_path: Path) -> None:
    dataset = simulated_dataset(300)
    backend = SimulatedBackend.for_dataset(dataset, p=0.45, seed=7)
    out = tmp_path / "sc.jsonl"
    specs = ["sc:n=1", "sc:n=2", "sc:n=3", "sc:n=5", "sc:n=8"]
    anyio.run(lambda: run_benchmark([dataset], specs, [backend], out))

    (curve,) = sc_curves(summarize(read_records(out)))
    assert (curve.dataset, curve.model, curve.adaptive) == ("simulated", "simulated(p=0.45)", False)
    assert [point.samples for point in curve.points] == [1, 2, 3, 5, 8]
    spread = spread_of(curve.model)
    assert spread is not None
    for point in curve.points:
        expected = majority_vote_accuracy(point.samples, spread)
        assert point.n == 300
        assert point.ci_low <= expected <= point.ci_high, (point, expected)
    # and the vote pays: eight samples beat one by more than the noise
    assert curve.points[-1].ci_low > curve.points[0].accuracy


# --- one simulated model per config; the README's table is what the code measures --------------------------
def test_a_config_measures_the_same_whatever_ran_before_it_in_the_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(out: Path, *specs: str) -> dict[str, list[str | None]]:
        args = [
            sys.executable,
            "-m",
            "thinkloop",
            "bench",
            "run",
            "simulated",
            "--simulated",
            "0.45",
            "--limit",
            "40",
            "--quiet",
            "--out",
            str(out),
        ]
        for spec in specs:
            args += ["--strategy", spec]
        subprocess.run(args, check=True, capture_output=True, timeout=120)
        by_config: dict[str, list[str | None]] = {}
        for record in sorted(read_records(out), key=lambda r: r.id):
            by_config.setdefault(record.strategy, []).append(record.prediction)
        return by_config

    alone = run(tmp_path / "alone.jsonl", "sc:n=8")
    after = run(tmp_path / "after.jsonl", "sc:n=8,adaptive=true", "sc:n=2", "sc:n=8")
    assert after["sc:n=8"] == alone["sc:n=8"]


def test_the_benchmarks_readme_shows_the_closed_form_table_of_the_committed_results() -> None:
    from thinkloop.bench.report import load_summaries
    from thinkloop.bench.simulated import closed_form_table

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    table = closed_form_table(load_summaries(root / "results" / "simulated" / "results.jsonl"))
    assert table.count("\n") == 10  # header, rule and eight sc configs
    assert table in (root / "README.md").read_text()


def test_a_mixed_set_is_fixed_by_its_seed_and_each_question_draws_from_its_own_spread() -> None:
    from thinkloop.bench.simulated import MIXED_TIERS, mixed_spreads

    data = simulated_dataset(40)
    questions = [p.question for p in data.problems]
    spreads = mixed_spreads(questions, seed=4)
    assert spreads == mixed_spreads(questions, seed=4) != mixed_spreads(questions, seed=5)
    assert sum(s.p == 0.3 for s in spreads.values()) == 10 and len(spreads) == 40 == len(set(spreads))
    easy, hard = MIXED_TIERS[0][1], MIXED_TIERS[1][1]
    backend = SimulatedBackend.for_dataset(data, spreads=spreads, reply_words=30)
    request = ChatRequest.of(questions[0], n=128)
    choices = anyio.run(backend.complete, request).choices
    right = sum(c.text.endswith(f" {data.problems[0].answer}.") for c in choices) / 128
    assert abs(right - spreads[questions[0]].p) < 0.12 and spreads[questions[0]] in (easy, hard)
    assert backend.name == "simulated(mixed)" and len(choices[0].text.split()) > 30
