"""Verifiers: judge a candidate answer and say why.

Plain checks (:class:`AnswerPresent`, :class:`FormatVerifier`), equivalence with a known answer
(:class:`MathAnswerVerifier`), a model as judge (:class:`LLMJudge`), running model-written code
(:class:`ProgramVerifier`) and combinations of them (:class:`AllOf`, :class:`AnyOf`, :class:`Weighted`).
Checks for the seed's cases: word counts (:class:`WordCount`), IFEval-style rules (:class:`Lowercase`,
:class:`NoCommas`, :class:`EndsWith`, :class:`KeywordCount`, :class:`Matches`), a number within a tolerance
(:class:`NumberWithin`), puzzles (:class:`Game24`, :class:`SumProduct`) and code under tests
(:class:`PythonTests`); :func:`verifier_from_check` builds any of them from a ``--check`` string or a data item.
Answer extraction and comparison, shared with the strategies, live in :mod:`thinkloop.verifiers.extract`.
"""

from thinkloop.verifiers.base import Verdict, Verifier
from thinkloop.verifiers.checks import AnswerPresent, FormatVerifier
from thinkloop.verifiers.combinators import AllOf, AnyOf, Weighted
from thinkloop.verifiers.constraints import EndsWith, KeywordCount, Lowercase, Matches, NoCommas
from thinkloop.verifiers.extract import answers_equivalent, extract_answer, normalize_answer, parse_number
from thinkloop.verifiers.judge import LLMJudge, parse_verdict
from thinkloop.verifiers.math import MathAnswerVerifier
from thinkloop.verifiers.numeric import NumberWithin
from thinkloop.verifiers.program import ProgramRun, ProgramVerifier, extract_program, network_namespace
from thinkloop.verifiers.puzzles import Game24, SumProduct
from thinkloop.verifiers.python_tests import PythonTests
from thinkloop.verifiers.spec import verifier_from_check
from thinkloop.verifiers.words import WordCount, count_words

__all__ = [
    "AllOf",
    "AnswerPresent",
    "AnyOf",
    "EndsWith",
    "FormatVerifier",
    "Game24",
    "KeywordCount",
    "LLMJudge",
    "Lowercase",
    "Matches",
    "MathAnswerVerifier",
    "NoCommas",
    "NumberWithin",
    "ProgramRun",
    "ProgramVerifier",
    "PythonTests",
    "SumProduct",
    "Verdict",
    "Verifier",
    "Weighted",
    "WordCount",
    "answers_equivalent",
    "count_words",
    "extract_answer",
    "extract_program",
    "network_namespace",
    "normalize_answer",
    "parse_number",
    "parse_verdict",
    "verifier_from_check",
]
