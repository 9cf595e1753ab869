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

from thinkloop._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "Verdict": "base", "Verifier": "base",
    "AnswerPresent": "checks", "FormatVerifier": "checks",
    "AllOf": "combinators", "AnyOf": "combinators", "Weighted": "combinators",
    "EndsWith": "constraints", "KeywordCount": "constraints", "Lowercase": "constraints",
    "Matches": "constraints", "NoCommas": "constraints",
    "answers_equivalent": "extract", "extract_answer": "extract", "normalize_answer": "extract",
    "parse_number": "extract",
    "LLMJudge": "judge", "parse_verdict": "judge",
    "MathAnswerVerifier": "math",
    "NumberWithin": "numeric",
    "ProgramRun": "program", "ProgramVerifier": "program", "extract_program": "program",
    "network_namespace": "program",
    "Game24": "puzzles", "SumProduct": "puzzles",
    "PythonTests": "python_tests",
    "verifier_from_check": "spec",
    "WordCount": "words", "count_words": "words",
})
