"""``thinkloop serve``: an OpenAI-compatible reasoning endpoint whose reasoning is visible.

Any OpenAI client reaches it by changing ``base_url``. A request picks a strategy (``extra_body``, a
``thinkloop[SPEC]`` model prefix, or ``reasoning_effort``), runs it under a hard budget, and gets the answer as
``content``, the strategy's steps as ``reasoning_content``, every upstream call summed in ``usage`` and the run
in ``thinkloop``. Modules: ``app`` (routes, auth, admission), ``schema`` (request checks), ``selection`` and
``effort`` (which strategy), ``plan`` (strategy and budget), ``runs`` (running and shaping the reply),
``stream`` (server-sent events), ``account`` (the readable reasoning), ``traces`` (recent traces),
``upstream`` (the served backend), ``errors``; the command and its flags are :mod:`thinkloop.cli.serve`.

Starlette and uvicorn come with the ``serve`` extra (``pip install 'thinkloop[serve]'``), not with every
install: :func:`require_server_packages` says so in one line where they are missing.
"""

from __future__ import annotations

import importlib.util
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinkloop.serve.app import create_app
    from thinkloop.serve.plan import Settings

__all__ = ["SERVER_PACKAGES", "Settings", "create_app", "require_server_packages"]
_HOMES = {"Settings": "thinkloop.serve.plan", "create_app": "thinkloop.serve.app"}

SERVER_PACKAGES = ("starlette", "uvicorn")
"""What the server runs on: the ``serve`` extra."""


def require_server_packages() -> None:
    """Raise a :class:`~thinkloop.exceptions.ConfigurationError` naming the ``serve`` extra when Starlette or
    uvicorn is not installed (checked without importing them)."""
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        from thinkloop.exceptions import ConfigurationError

        raise ConfigurationError(
            f"thinkloop serve needs {' and '.join(missing)}, not installed: pip install 'thinkloop[serve]'"
        )


def __getattr__(name: str) -> Any:
    """Load on first use: ``thinkloop --help`` registers the command without importing Starlette."""
    if name in _HOMES:
        if name == "create_app":
            require_server_packages()
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
