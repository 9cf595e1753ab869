"""Which strategy and budget a request gets, chosen three ways, and the model-name prefix that is one of them.

1. ``extra_body={"thinkloop": {"strategy": "sc:n=8", "budget": {"tokens": N, "dollars": D, "seconds": S}}}``
   (always works, whatever the client);
2. a strategy prefix on the model name, for clients that can set nothing but the model:
   ``thinkloop[SPEC]/MODEL`` or ``thinkloop[SPEC]`` (the served model), e.g. ``thinkloop[sc:n=8]/gpt-4o``;
3. ``reasoning_effort`` with the plain model name, through the table in :mod:`thinkloop.serve.effort`;
4. optillm's approach slug (``moa-MODEL``) or ``optillm_approach`` field (:mod:`thinkloop.serve.optillm`).

Otherwise the server's ``--strategy`` applies. Naming a strategy twice in different ways is a 400, not a
silent pick. The prefix cannot be confused with a model name: model names use ``-``, ``/``, ``:`` and ``.``
(``meta-llama/Llama-3.1-8B``, ``qwen2.5:7b``, ``ft:gpt-4o:org::id``) but never ``[``, and a name without the
``thinkloop[`` opening is taken whole, as the model's own name, even when it looks like a spec (``sc:n=8``).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX_OPEN = "thinkloop["
ALIAS = "thinkloop"
"""The model name that means "the served model" (``thinkloop[SPEC]`` is that with a strategy)."""


@dataclass(frozen=True)
class ModelName:
    model: str | None
    """The model named after the prefix (``None``: the served model)."""
    strategy: str | None
    """The spec inside ``thinkloop[...]`` (``None``: no prefix)."""


def parse_model_name(name: str) -> ModelName:
    """Split ``thinkloop[SPEC]/MODEL`` into its spec and model; any other name is a model name, whole.

    The spec ends at the first ``]`` that ends the name or is followed by ``/``, so a model name after it may
    hold any character (``thinkloop[cot]/org/model:tag``). Raises ``ValueError`` on an unclosed or empty
    bracket.
    """
    if name == ALIAS:
        return ModelName(model=None, strategy=None)
    if not name.startswith(PREFIX_OPEN):
        return ModelName(model=name, strategy=None)
    rest = name[len(PREFIX_OPEN) :]
    position = 0
    while True:
        close = rest.find("]", position)
        if close < 0:
            raise ValueError(f"model {name!r}: 'thinkloop[' opens a strategy prefix with no closing ']/' or ']'")
        after = rest[close + 1 :]
        if after == "" or after.startswith("/"):
            break
        position = close + 1
    spec = rest[:close].strip()
    if not spec:
        raise ValueError(f"model {name!r}: the strategy prefix 'thinkloop[]' is empty")
    model = after[1:] if after else None
    if after and not model:
        raise ValueError(f"model {name!r}: nothing after 'thinkloop[{spec}]/' (leave out the '/' for the served model)")
    return ModelName(model=model, strategy=spec)


def prefixed(spec: str, model: str | None = None) -> str:
    """The model name that selects ``spec`` (on ``model``, or the served model)."""
    return f"{PREFIX_OPEN}{spec}]" + (f"/{model}" if model else "")
