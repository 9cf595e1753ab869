"""optillm's way of choosing an approach, so an optillm user switches by changing the base URL.

optillm reads the approach from a slug before the model name (``moa-gpt-4o-mini``: approach ``moa`` on
``gpt-4o-mini``; ``&`` and ``|`` join several) or from the body's ``optillm_approach`` field. Each approach
thinkloop has an equivalent of runs as that strategy (:data:`APPROACHES`); any other optillm approach, and
the combinations, are a 400 that names the nearest thinkloop strategy (:data:`NEAREST`). ``auto`` in
``optillm_approach`` (optillm's "read the slug") defers to the slug, then to the server's default.
"""

from __future__ import annotations

from thinkloop.serve.errors import bad_request

APPROACHES: dict[str, str] = {
    "none": "direct",
    "bon": "bon:n=3",  # optillm's best_of_n default is 3
    "moa": "moa:n=3",
    "self_consistency": "sc:n=5",
    "majority_voting": "sc:n=5",
    "re2": "cot:reread=true",
    "mcts": "tree:mode=mcts",
    "deepconf": "deepconf",
    "cot_reflection": "critique:max_rounds=1",
}
"""optillm approach -> the thinkloop spec that runs for it."""

NEAREST: dict[str, str] = {
    "rstar": "tree:mode=mcts",
    "plansearch": "bon",
    "leap": "cot",
    "rto": "critique",
    "pvg": "critique",
    "z3": "cot",
    "cepo": "bon",
    "mars": "moa",
    "thinkdeeper": "effort:high",
    "autothink": "auto",
    "cot_decoding": "sc",
    "entropy_decoding": "direct",
    "executecode": "cot",
    "spl": "cot",
    "longcepo": "bon",
    "memory": "direct",
    "privacy": "direct",
    "readurls": "direct",
    "json": "direct",
    "web_search": "direct",
    "deep_research": "auto",
    "proxy": "direct",
}
"""optillm approaches with no thinkloop equivalent -> the strategy a 400 suggests instead."""


def split_slug(model: str) -> tuple[str | None, str]:
    """``moa-gpt-4o-mini`` -> (``moa``, ``gpt-4o-mini``); a name whose first ``-`` part is no optillm approach
    (nor a ``&``/``|`` combination) is a model name, whole: (``None``, ``model``)."""
    first, sep, rest = model.partition("-")
    if not sep or not rest:
        return None, model
    if first in APPROACHES or first in NEAREST or "&" in first or "|" in first:
        return first, rest
    return None, model


def spec_for(approach: str, *, param: str) -> str:
    """The thinkloop spec an optillm approach runs as, or a 400 naming the nearest strategy."""
    approach = approach.strip()
    if approach in APPROACHES:
        return APPROACHES[approach]
    if "&" in approach or "|" in approach:
        parts = [p for p in approach.replace("|", "&").split("&") if p]
        nearest = next((APPROACHES.get(p) or NEAREST.get(p) for p in parts if p in APPROACHES or p in NEAREST), "auto")
        raise bad_request(
            f"optillm approach {approach!r}: combined approaches are not supported; nearest thinkloop strategy: "
            f"{nearest!r} (send it as 'thinkloop[{nearest}]/MODEL' or extra_body thinkloop.strategy)",
            param=param,
            code="unsupported_approach",
        )
    nearest = NEAREST.get(approach, "auto")
    known = ", ".join(sorted(APPROACHES))
    raise bad_request(
        f"optillm approach {approach!r} has no thinkloop equivalent; nearest thinkloop strategy: {nearest!r} "
        f"(send it as 'thinkloop[{nearest}]/MODEL'); approaches served: {known}",
        param=param,
        code="unsupported_approach",
    )
