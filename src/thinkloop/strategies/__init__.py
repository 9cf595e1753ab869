"""Reasoning strategies: policies that grow a run's graph through its context.

::

    base.py              Strategy (options, run/run_sync, inner strategies) and StrategyConfig
    cot.py               Direct and ChainOfThought (re-prompted with a verifier's feedback)
    self_consistency.py  SelfConsistency (fixed or adaptive vote)
    best_of_n.py         BestOfN (scored by a verifier, a judge or a reward)
    critique.py          CritiqueRevise
    tree_search.py       TreeSearch (beam, BFS, DFS with backtracking, MCTS)
    auto.py              Auto (compute per question: escalates on disagreement or a verifier's rejection)
    effort.py            the effort table (none ... high, auto), Effort, think() / think_sync()
    deepconf.py          DeepConf (confidence-filtered, confidence-weighted vote; online early stops)
    confidence.py        token confidence measures over a reply (mean, lowest group, bottom 10%, tail)
    stepwise.py          what step-by-step reward-guided searches share (steps, step rewards, the pick)
    beam.py              BeamSearch and DVTS guided by a step reward (search-and-learn)
    particles.py         ParticleFilter (sequential Monte Carlo resampled by step reward)
    cascade.py           Cascade (a cheap model first; the run's model when its samples disagree or a check fails)
    usc.py               UniversalSelfConsistency (the model picks the most consistent free-form reply)
    moa.py               MixtureOfAgents (proposers on any backends, an aggregator)
    vote.py              the vote: answers grouped by equivalence, stopping rules
    registry.py          NAME:key=value specs, built-in and plugin strategies
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Strategy": "base",
        "StrategyConfig": "base",
        "Conversation": "base",
        "ChainOfThought": "cot",
        "Direct": "cot",
        "SelfConsistency": "self_consistency",
        "BestOfN": "best_of_n",
        "CritiqueRevise": "critique",
        "TreeSearch": "tree_search",
        "Auto": "auto",
        "DeepConf": "deepconf",
        "BeamSearch": "beam",
        "DVTS": "beam",
        "ParticleFilter": "particles",
        "Cascade": "cascade",
        "UniversalSelfConsistency": "usc",
        "MixtureOfAgents": "moa",
        "Effort": "effort",
        "think": "effort",
        "think_sync": "effort",
        "EFFORTS": "effort",
        "build_strategy": "registry",
    },
)
