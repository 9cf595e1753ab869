"""Every example runs to completion on the embedded model and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def test_there_is_an_example_per_strategy() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"chain_of_thought", "self_consistency", "best_of_n", "critique_revise", "tree_search"} <= names


@pytest.mark.integration
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_runs(example: Path) -> None:
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "answer" in done.stdout.lower()
