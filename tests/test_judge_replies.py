"""Judge replies as models really write them: trailing periods, markdown, CRLF, a remark after the score.

A verdict the judge stated clearly is read as stated; only a reply without one (or with a score that is not a
number from 0 to 1) is a rejection, and that rejection says why.
"""

from __future__ import annotations

import pytest

from thinkloop.verifiers.judge import parse_verdict

READ_AS_STATED = [
    # (reply, accepted, score)
    ("The steps add up: 48 + 24 = 72.\nVERDICT: CORRECT\nSCORE: 0.95.", True, 0.95),
    ("VERDICT: CORRECT.\nSCORE: 0.95.", True, 0.95),
    ("VERDICT: CORRECT\nSCORE: 0.95\n", True, 0.95),
    ("VERDICT: CORRECT\r\nSCORE: 0.9\r\n", True, 0.9),
    ("VERDICT: INCORRECT\nSCORE: 0.05.", False, 0.05),
    ("**VERDICT:** CORRECT\n**SCORE:** 0.92", True, 0.92),
    ("**VERDICT: CORRECT**\n**SCORE: 0.92**", True, 0.92),
    ("VERDICT: **CORRECT**\nSCORE: **0.8**.", True, 0.8),
    ("`VERDICT: CORRECT`\n`SCORE: 0.7`", True, 0.7),
    ("> VERDICT: CORRECT\n> SCORE: 0.6", True, 0.6),
    ("Verdict: Correct\nScore: 1", True, 1.0),
    ("verdict: incorrect\nscore: 0", False, 0.0),
    ("VERDICT: CORRECT!\nSCORE: 1.0!", True, 1.0),
    ("VERDICT: CORRECT\nSCORE: .85;", True, 0.85),
    ("VERDICT: CORRECT\nSCORE: 0.97 (the arithmetic checks out)", True, 0.97),
    ("VERDICT: INCORRECT\nSCORE: 0.1 (step 3 drops a sign)", False, 0.1),
    ("Step 1 is fine.\nStep 2 is fine.\n\nVERDICT: CORRECT\n\nSCORE: 0.99.\n\n", True, 0.99),
    ("VERDICT:CORRECT\nSCORE:0.9", True, 0.9),
    ("VERDICT:   CORRECT   \nSCORE:   0.75   ", True, 0.75),
    ("VERDICT: CORRECT\nSCORE: 1.00.", True, 1.0),
    ("VERDICT: CORRECT", True, 1.0),
    ("VERDICT: INCORRECT.", False, 0.0),
    ("VERDICT: CORRECT\nVERDICT: CORRECT\nSCORE: 0.9", True, 0.9),
]


@pytest.mark.parametrize(("reply", "accepted", "score"), READ_AS_STATED)
def test_a_clear_verdict_is_read_as_stated(reply: str, accepted: bool, score: float) -> None:
    verdict = parse_verdict(reply)
    assert (verdict.accepted, verdict.score) == (accepted, score), verdict.feedback


REJECTED_WITH_A_REASON = [
    # (reply, what the feedback names)
    ("The answer looks right to me.", "no verdict line"),
    ("VERDICT: CORRECT\nVERDICT: INCORRECT\nSCORE: 0.5", "contradicting verdict lines"),
    ("VERDICT: CORRECT\nSCORE: 95%", "SCORE '95%' is not a number from 0 to 1"),
    ("VERDICT: CORRECT\nSCORE: 1.5.", "SCORE '1.5' is not a number from 0 to 1"),
    ("VERDICT: CORRECT\nSCORE: 0.9.5", "SCORE '0.9.5' is not a number from 0 to 1"),
    ("VERDICT: CORRECT\nSCORE: very high", "SCORE 'very high' is not a number from 0 to 1"),
    ("VERDICT: CORRECT\nSCORE: -0.2", "SCORE '-0.2' is not a number from 0 to 1"),
    ("VERDICT: CORRECT\nSCORE: 0.9 or 0.8", "SCORE '0.9 or 0.8' is not a number from 0 to 1"),
    ("VERDICT: MOSTLY CORRECT\nSCORE: 0.6", "no verdict line"),
]


@pytest.mark.parametrize(("reply", "why"), REJECTED_WITH_A_REASON)
def test_an_unclear_reply_is_a_rejection_naming_the_problem(reply: str, why: str) -> None:
    verdict = parse_verdict(reply)
    assert (verdict.accepted, verdict.score) == (False, 0.0)
    assert verdict.feedback is not None and why in verdict.feedback, verdict.feedback
