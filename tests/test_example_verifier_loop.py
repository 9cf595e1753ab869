"""examples/verifier_loop.py reports the accepted round's answer as the run's answer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "verifier_loop.py"


@pytest.mark.integration
def test_the_final_answer_is_the_accepted_rounds_answer() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    final = re.match(r"answer=('[^']*'|None) stop=(\w+)", lines[0])
    assert final is not None, lines[0]
    rounds = [
        (re.search(r"answer=('[^']*'|None)", a).group(1), v.strip())  # type: ignore[union-attr]
        for a, v in zip(lines[2::2], lines[3::2], strict=False)
        if "round" in a
    ]
    accepted = [answer for answer, verdict in rounds if verdict == "accepted"]
    if accepted:  # the run stops at the first accepted round, and that round's answer is the run's
        assert final.groups() == (accepted[0], "accepted") and rounds[-1][1] == "accepted"
    else:
        assert final.group(2) in {"max_rounds", "budget"}
