"""The backend flags every command shares (``--model``, ``--base-url``, ``--api-key-env``), turned into a
backend by the one resolver, :mod:`thinkloop.backends.resolve`: ``ask``, ``serve`` and ``bench`` differ only
in the settings they add (timeouts, threads, concurrency), never in what a name means.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from thinkloop.cli import PROG, UsageError

if TYPE_CHECKING:
    from thinkloop.backends.base import Backend

ASK_SERVER_OPTIONS: Mapping[str, Any] = {"check_server": True}
"""``ask``'s server settings: the backend's default timeouts (10 s to connect), and a check of the server
before the first call, so a server that takes the connection and never answers, or refuses the key, fails in
seconds."""


def make_backend(
    base_url: str | None,
    model: str | None,
    api_key_env: str | None = None,
    *,
    logprobs: bool = False,
    server_options: Mapping[str, Any] = ASK_SERVER_OPTIONS,
) -> Backend:
    """The backend the flags name, by :mod:`thinkloop.backends.resolve`'s rules (a plugin, the embedded model,
    a server, a GGUF file, the OpenAI API); a flag that does not fit the backend is a usage error."""
    from thinkloop.backends.resolve import resolve_backend, target_of

    if base_url is not None and not model:
        raise UsageError(f"{PROG} ask: error: --base-url needs --model NAME (the model's name at {base_url})")
    if base_url is not None:
        check_base_url(base_url)
    target = target_of(model, base_url)
    if api_key_env is not None and target.kind == "embedded":
        raise UsageError(f"{PROG} ask: error: --api-key-env needs --model NAME (a model on a server)")
    if api_key_env is not None and target.kind == "gguf":
        raise UsageError(f"{PROG} ask: error: --api-key-env is for a server; {model} runs in-process")
    if api_key_env is not None and target.kind == "plugin":
        raise UsageError(
            f"{PROG} ask: error: --api-key-env is for a server reached through the OpenAI SDK; "
            f"plugin {target.plugin} reads its own settings"
        )
    return resolve_backend(target, api_key=api_key_from(api_key_env), logprobs=logprobs, server_options=server_options)


def check_base_url(base_url: str) -> None:
    """An address the SDK can use, else a usage error naming the flag."""
    from thinkloop.backends.resolve import base_url_problem

    problem = base_url_problem(base_url)
    if problem is not None:
        raise UsageError(f"{PROG}: error: --base-url {problem}")


def api_key_from(variable: str | None) -> str | None:
    """The key in ``variable`` (``None`` when no variable is named: the SDK reads ``OPENAI_API_KEY``)."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise UsageError(f"{PROG} ask: error: --api-key-env {variable}: the variable {variable} is not set")
    return key
