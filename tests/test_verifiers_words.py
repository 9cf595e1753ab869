"""Word counts and IFEval-style constraints: what they count, and the feedback that tells the model what to fix."""

from __future__ import annotations

import re

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers import AllOf
from thinkloop.verifiers.base import Verdict
from thinkloop.verifiers.constraints import EndsWith, KeywordCount, Lowercase, Matches, NoCommas
from thinkloop.verifiers.words import WordCount, count_words, reply_subject


def verdict(verifier: object, text: str) -> Verdict:
    return anyio.run(verifier.verify, "q", Candidate(text=text))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("The sea is calm.", 4),
        ("Don't stop, well-known friend!", 4),
        ("", 0),
        ("  ...  ", 0),
        ("3 cats and 2 dogs", 5),
        ("café au lait", 3),
        ("a_b", 2),
    ],
)
def test_count_words(text: str, words: int) -> None:
    assert count_words(text) == words


@given(
    st.lists(st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True), max_size=30),
    st.sampled_from([" ", "  ", "\n", ", ", " - "]),
)
def test_count_words_counts_every_word_whatever_separates_them(words: list[str], separator: str) -> None:
    assert count_words(separator.join(words)) == len(words)


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("Let me think.\nAnswer: The sea is calm.", "The sea is calm."),
        ('Answer:\n"The sea is calm"\n', "The sea is calm"),
        ("**Final answer:** the sea", "the sea"),
        ("just a sentence", "just a sentence"),
        ("Answer: first\nAnswer: second", "second"),
    ],
)
def test_reply_subject(text: str, subject: str) -> None:
    assert reply_subject(text) == subject


def test_word_count_says_how_far_off_and_which_way() -> None:
    assert verdict(WordCount(12), "one two three four five six seven eight nine").feedback == (
        "You wrote 9 words; it must be exactly 12: add 3 words."
    )
    too_long = verdict(WordCount(3), "Answer: one two three four")
    assert not too_long.accepted and too_long.feedback == "You wrote 4 words; it must be exactly 3: remove 1 word."
    assert verdict(WordCount(4), "Thinking...\nAnswer: one two three four").accepted
    assert verdict(WordCount(4, tolerance=1), "one two three").accepted


def test_word_count_scores_the_nearest_miss_highest() -> None:
    scores = [verdict(WordCount(8), " ".join(["w"] * n)).score for n in (2, 5, 7, 8, 9, 14)]
    assert scores[3] == 1.0
    assert scores[0] < scores[1] < scores[2] and scores[2] == scores[4] > scores[5]


def test_word_count_rejects_a_meaningless_target() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("WordCount needs n >= 1 and tolerance >= 0 (got n=0")):
        WordCount(0)


def test_constraints_each_name_what_is_wrong() -> None:
    assert verdict(Lowercase(), "Answer: the Sea is BLUE").feedback == (
        "Use only lowercase letters; these words have capitals: 'Sea', 'BLUE'."
    )
    assert verdict(Lowercase(), "Thinking Hard\nAnswer: all lowercase here").accepted  # only the answer counts
    assert verdict(NoCommas(), "a, b, c").feedback == "Do not use commas; you used 2."
    assert verdict(EndsWith("today"), "we swim today!").accepted
    assert verdict(EndsWith("today"), "we swim now").feedback == (
        "The reply must end with the word 'today'; it ends with 'now'."
    )
    assert verdict(KeywordCount("sea", 2), "the sea and the seas").feedback == (
        "Use the word 'sea' at least 2 times; you used it 1."
    )
    assert verdict(KeywordCount("sea", 2), "Sea, sea!").accepted
    assert not verdict(KeywordCount("sea", 1, mode="exactly"), "sea sea").accepted
    assert verdict(Matches(r"^\d{3}$", fullmatch=False), "Answer: 123").accepted
    assert not verdict(Matches(r"\d{3}", fullmatch=True), "Answer: 1234").accepted


def test_composed_constraints_pass_only_together_and_report_every_complaint() -> None:
    rules = AllOf(Lowercase(), NoCommas(), KeywordCount("sea", 2), EndsWith("today"))
    bad = verdict(rules, "The Sea, today")
    assert not bad.accepted
    assert bad.feedback is not None
    for complaint in ("capitals", "commas", "'sea' at least 2 times"):
        assert complaint in bad.feedback
    assert "end with" not in bad.feedback
    assert verdict(rules, "the sea is calm and the sea is blue today").accepted


def test_bad_constraint_configuration_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="EndsWith needs one word"):
        EndsWith("two words")
    with pytest.raises(ConfigurationError, match="invalid regular expression"):
        Matches("(")
