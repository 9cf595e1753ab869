"""Verifiers: judge a candidate answer and say why.

Plain checks (:class:`AnswerPresent`, :class:`FormatVerifier`), equivalence with a known answer
(:class:`MathAnswerVerifier`), a model as judge (:class:`LLMJudge`), running model-written code
(:class:`ProgramVerifier`) and combinations of them (:class:`AllOf`, :class:`AnyOf`, :class:`Weighted`).

::

    base.py         Verifier and Verdict
    extract.py      extract_answer: the final answer of a reply (re-exports the next two's names)
    normalize.py    normalize_answer, parse_number: one canonical spelling, exact values
    equivalence.py  answers_equivalent, canonical_key: exact numbers, math-verify under a deadline
    math.py         MathAnswerVerifier (a known reference, exact unless a tolerance is given)
    judge.py        LLMJudge, parse_verdict
    program.py      ProgramVerifier (model-written code in a sandbox)
    checks.py       AnswerPresent, FormatVerifier
    combinators.py  AllOf, AnyOf, Weighted
    words.py        WordCount, count_words: exact word counts, with how far off the reply was
    constraints.py  Lowercase, NoCommas, EndsWith, KeywordCount, Matches (IFEval-style rules)
    numeric.py      NumberWithin: a number within a tolerance of the checker's own value
    puzzles.py      Game24, SumProduct: exact puzzle checkers with partial credit for search
    python_tests.py PythonTests: the reply's program against given asserts, in the program sandbox
    spec.py         verifier_from_check: any of these from a --check string or a data item
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Verdict": "base",
        "Verifier": "base",
        "AnswerPresent": "checks",
        "FormatVerifier": "checks",
        "AllOf": "combinators",
        "AnyOf": "combinators",
        "Weighted": "combinators",
        "EndsWith": "constraints",
        "KeywordCount": "constraints",
        "Lowercase": "constraints",
        "Matches": "constraints",
        "NoCommas": "constraints",
        "answers_equivalent": "extract",
        "extract_answer": "extract",
        "normalize_answer": "extract",
        "parse_number": "extract",
        "LLMJudge": "judge",
        "parse_verdict": "judge",
        "MathAnswerVerifier": "math",
        "NumberWithin": "numeric",
        "ProgramRun": "program",
        "ProgramVerifier": "program",
        "extract_program": "program",
        "sandbox_unavailable_reason": "program",
        "Game24": "puzzles",
        "SumProduct": "puzzles",
        "PythonTests": "python_tests",
        "verifier_from_check": "spec",
        "WordCount": "words",
        "count_words": "words",
    },
)
