"""The verifier protocol: judge a candidate answer to a question.

A verifier returns a :class:`Verdict`: accepted or not, a score in [0, 1] and feedback a reviser can use.
Verifiers that call a model do so through the run's context (``ctx.call``), so their calls are charged to
the same budget and appear in the trace. Both types are defined by the runtime, which calls them
(:mod:`thinkloop.runtime.verdict`); this module is where verifier authors find them.
"""

from thinkloop.runtime.verdict import Verdict, Verifier

__all__ = ["Verdict", "Verifier"]
