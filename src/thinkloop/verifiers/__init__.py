"""Verifiers: judge a candidate answer and say why.

Plain checks (:class:`AnswerPresent`, :class:`FormatVerifier`), equivalence with a known answer
(:class:`MathAnswerVerifier`), a model as judge (:class:`LLMJudge`), running model-written code
(:class:`ProgramVerifier`) and combinations of them (:class:`AllOf`, :class:`AnyOf`, :class:`Weighted`).
Answer extraction and comparison, shared with the strategies, live in :mod:`thinkloop.verifiers.extract`.
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
    "network_namespace": "program",
})
