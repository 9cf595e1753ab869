"""Verifiers: judge a candidate answer and say why.

Plain checks (:class:`AnswerPresent`, :class:`FormatVerifier`), equivalence with a known answer
(:class:`MathAnswerVerifier`), a model as judge (:class:`LLMJudge`), running model-written code
(:class:`ProgramVerifier`) and combinations of them (:class:`AllOf`, :class:`AnyOf`, :class:`Weighted`).
Shared with the strategies: answer extraction (:mod:`~thinkloop.verifiers.extract`), normalisation
(:mod:`~thinkloop.verifiers.normalize`) and equivalence (:mod:`~thinkloop.verifiers.equivalence`); the
extraction module re-exports the other two's public names.
"""

from thinkloop.verifiers.base import Verdict, Verifier
from thinkloop.verifiers.checks import AnswerPresent, FormatVerifier
from thinkloop.verifiers.combinators import AllOf, AnyOf, Weighted
from thinkloop.verifiers.extract import answers_equivalent, extract_answer, normalize_answer, parse_number
from thinkloop.verifiers.judge import LLMJudge, parse_verdict
from thinkloop.verifiers.math import MathAnswerVerifier
from thinkloop.verifiers.program import ProgramRun, ProgramVerifier, extract_program, network_namespace

__all__ = [
    "AllOf",
    "AnswerPresent",
    "AnyOf",
    "FormatVerifier",
    "LLMJudge",
    "MathAnswerVerifier",
    "ProgramRun",
    "ProgramVerifier",
    "Verdict",
    "Verifier",
    "Weighted",
    "answers_equivalent",
    "extract_answer",
    "extract_program",
    "network_namespace",
    "normalize_answer",
    "parse_number",
    "parse_verdict",
]
