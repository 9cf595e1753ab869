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
"""

from thinkloop._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "Verdict": "base", "Verifier": "base",
    "AnswerPresent": "checks", "FormatVerifier": "checks",
    "AllOf": "combinators", "AnyOf": "combinators", "Weighted": "combinators",
    "answers_equivalent": "extract", "extract_answer": "extract", "normalize_answer": "extract",
    "parse_number": "extract",
    "LLMJudge": "judge", "parse_verdict": "judge",
    "MathAnswerVerifier": "math",
    "ProgramRun": "program", "ProgramVerifier": "program", "extract_program": "program",
    "sandbox_unavailable_reason": "program",
})
