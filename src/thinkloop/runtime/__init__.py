"""The runtime: runs a policy under a budget, records every step, and knows nothing of the layers above it.

::

    engine.py     Engine.run(policy, question): task group, deadline, the stop reason and best answer
    context.py    RunContext: the one choke point for model calls (reserve, send, settle, record, retry)
    budget.py     Budget (limits), Price, BudgetLedger (reservations and what was billed)
    graph.py      Node and ReasoningGraph (networkx on demand)
    trace.py      trace events, the JSONL sink, live streams, load_trace, replay
    result.py     Candidate, Outcome, Result
    verdict.py    the Verifier protocol and its Verdict, which the context calls
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "Engine": "engine", "Policy": "engine",
    "RunContext": "context", "RunTotals": "context", "Samples": "context",
    "Budget": "budget", "BudgetLedger": "budget", "Price": "budget",
    "Node": "graph", "ReasoningGraph": "graph",
    "JsonlTraceSink": "trace", "Trace": "trace", "graph_from_events": "trace", "load_trace": "trace",
    "recorded_calls": "trace", "replay": "trace",
    "Candidate": "result", "Outcome": "result", "Result": "result",
    "Verdict": "verdict", "Verifier": "verdict",
})
