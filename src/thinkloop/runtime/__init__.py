"""The runtime: runs a policy under a budget, records every step, and knows nothing of the layers above it.

::

    engine.py     Engine.run(policy, question): task group, deadline, the stop reason and best answer
    context.py    RunContext: what strategies are handed, a facade over the parts below
    caller.py     Caller: the one choke point for model calls (reserve, send, settle, record, retry)
    recorder.py   Recorder: node versions onto the graph and out to the trace
    sampling.py   Sampler: k samples of one request, as cheaply as the backend allows
    best.py       BestSoFar: the best answer so far, for a run stopped early
    budget.py     Budget (limits), Price, BudgetLedger (reservations; what was billed, its usage and cost)
    graph.py      Node and ReasoningGraph (networkx on demand)
    trace.py      trace events, the JSONL sink, live streams, load_trace, replay
    result.py     Candidate, Outcome, Result
    verdict.py    the Verifier protocol and its Verdict, which the context calls
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Engine": "engine",
        "Policy": "engine",
        "RunContext": "context",
        "RunTotals": "best",
        "BestSoFar": "best",
        "Samples": "sampling",
        "Caller": "caller",
        "Recorder": "recorder",
        "Sampler": "sampling",
        "Budget": "budget",
        "BudgetLedger": "budget",
        "Price": "budget",
        "Node": "graph",
        "ReasoningGraph": "graph",
        "JsonlTraceSink": "trace",
        "Trace": "trace",
        "graph_from_events": "trace",
        "load_trace": "trace",
        "recorded_calls": "trace",
        "replay": "trace",
        "Candidate": "result",
        "Outcome": "result",
        "Result": "result",
        "Verdict": "verdict",
        "Verifier": "verdict",
    },
)
