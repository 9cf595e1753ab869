"""``thinkloop serve``: an OpenAI-compatible reasoning endpoint whose reasoning is visible.

Any OpenAI client reaches it by changing ``base_url``. A request picks a strategy (``extra_body``, a
``thinkloop[SPEC]`` model prefix, or ``reasoning_effort``), runs it under a hard budget, and gets the answer as
``content``, the strategy's steps as ``reasoning_content``, every upstream call summed in ``usage`` and the run
in ``thinkloop``. Modules: ``app`` (routes, auth, admission), ``schema`` (request checks), ``selection`` and
``effort`` (which strategy), ``plan`` (strategy and budget), ``runs`` (running and shaping the reply),
``stream`` (server-sent events), ``account`` (the readable reasoning), ``traces`` (recent traces),
``upstream`` (the served backend), ``errors``; the command and its flags are :mod:`thinkloop.cli.serve`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinkloop.serve.app import create_app
    from thinkloop.serve.plan import Settings

__all__ = ["Settings", "create_app"]
_HOMES = {"Settings": "thinkloop.serve.plan", "create_app": "thinkloop.serve.app"}


def __getattr__(name: str) -> Any:
    """Load on first use: ``thinkloop --help`` registers the command without importing Starlette."""
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
