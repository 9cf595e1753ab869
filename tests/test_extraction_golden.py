"""The answer extractor against a golden set of labelled model outputs (``tests/data/extraction_golden.jsonl``):
GSM8K ``####`` solutions, nested ``\\boxed{}``, fractions, units and money, answers after a ``<think>`` block,
plain statements, and replies with no answer at all. Every label must come out exactly, and a reply with no
answer must give ``None``, never a number (issue 16's fault suite).

Each line: ``id``, ``category``, ``output`` (the model's text), ``answer`` (the normalised answer, or
``null`` when the reply states none) and an optional ``note`` saying why a label is what it is.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from thinkloop.verifiers.extract import extract_answer

GOLDEN = Path(__file__).parent / "data" / "extraction_golden.jsonl"
CASES = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
CATEGORIES = {"gsm8k", "boxed", "fraction", "units", "think", "statement", "no_answer"}


def test_the_golden_set_is_large_and_covers_every_kind_of_reply() -> None:
    assert len(CASES) >= 200
    assert len({c["id"] for c in CASES}) == len(CASES)
    counts = Counter(c["category"] for c in CASES)
    assert set(counts) == CATEGORIES and min(counts.values()) >= 20, counts


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_each_labelled_output(case: dict[str, str | None]) -> None:
    assert extract_answer(case["output"]) == case["answer"], case.get("note")  # type: ignore[arg-type]


def test_a_reply_without_an_answer_is_never_read_as_a_number() -> None:
    read = {c["id"]: extract_answer(c["output"]) for c in CASES if c["category"] == "no_answer"}  # type: ignore[arg-type]
    assert {i: a for i, a in read.items() if a is not None} == {}
