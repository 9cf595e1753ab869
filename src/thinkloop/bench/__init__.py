"""The benchmark harness: data sets, a resumable runner, prices, reports and plots, and a simulated model.

Names load on first use (``from thinkloop.bench import run_benchmark``), so ``thinkloop --help`` and the
``bench`` command's parser stay light.

::

    datasets.py   load_dataset / load_jsonl -> Dataset of Problem (strict: file:line and field in errors)
    runner.py     run_benchmark / Runner: (data set x strategy x backend) -> one Record per problem
    health.py     a dead server (or a missing model) found after a few problems, not after hundreds
    store.py      ResultStore: append-only JSONL, resumable, torn-line safe
    PriceTable    shipped prices per million tokens, overridable (from thinkloop.pricing, which ask and
                  serve use too)
    report.py     summarize -> ConfigSummary rows; markdown / json / csv; sc_curves
    plots.py      accuracy vs tokens and vs cost (Pareto front), accuracy vs samples
    simulated.py  SimulatedBackend with a known accuracy, majority_vote_accuracy in closed form
    executors/    RayExecutor: the same grid over a pool of Ray actors, this process the only writer
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Dataset": "datasets",
        "Problem": "datasets",
        "load_dataset": "datasets",
        "load_jsonl": "datasets",
        "subset": "datasets",
        "Config": "runner",
        "Runner": "runner",
        "RunSummary": "runner",
        "make_configs": "runner",
        "run_benchmark": "runner",
        "RayExecutor": "executors.ray_executor",
        "Record": "store",
        "ResultStore": "store",
        "read_records": "store",
        "PriceTable": "thinkloop.pricing",
        "ConfigSummary": "report",
        "summarize": "report",
        "load_summaries": "report",
        "render": "report",
        "sc_curves": "report",
        "wilson_interval": "report",
        "write_plots": "plots",
        "SimulatedBackend": "simulated",
        "Spread": "simulated",
        "majority_vote_accuracy": "simulated",
        "simulated_dataset": "simulated",
    },
)
