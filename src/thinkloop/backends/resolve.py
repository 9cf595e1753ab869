"""From a model name (and perhaps a server's URL) to a backend: one set of rules for ``ask``, ``serve``,
``bench`` and Python, so a name means the same thing wherever it is typed.

The rules, first match wins:

1. ``plugin:NAME`` or ``plugin:NAME:MODEL``: the backend that the installed plugin ``NAME`` provides (a
   ``thinkloop.backends`` entry point, ``thinkloop plugins`` lists them), its factory called with
   ``model=MODEL`` and ``base_url=URL`` where they are given. ``MODEL`` may hold colons (``llama3:8b``).
2. No name and no URL: the embedded SmolLM2-135M-Instruct, in this process.
3. A URL: the model of that name on that OpenAI-compatible server (a name is needed), even a name that ends
   in ``.gguf`` (llama.cpp's server calls its model by its file name).
4. A name that ends in ``.gguf``, or the path of a file that exists: that GGUF model, in this process.
5. Any other name: a model on the OpenAI API, or on the server in ``OPENAI_BASE_URL`` when it is set.

Each command adds only its own settings (timeouts, threads, concurrency), never rules of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from thinkloop.backends.base import Backend
from thinkloop.exceptions import ConfigurationError

PLUGIN_PREFIX = "plugin:"

TargetKind = Literal["plugin", "embedded", "gguf", "server", "openai"]


@dataclass(frozen=True)
class Target:
    """What a name (and URL) resolves to, before anything is loaded or connected."""

    kind: TargetKind
    model: str | None
    """The model: a file for ``gguf``, the server's name for ``server``/``openai``, the plugin's for ``plugin``."""
    base_url: str | None = None
    plugin: str | None = None
    """The plugin's entry-point name (``plugin`` only)."""

    @property
    def in_process(self) -> bool:
        """Whether the model runs in this process (no server, no key)."""
        return self.kind in ("embedded", "gguf")


def is_gguf_path(model: str) -> bool:
    """A GGUF file to run in-process: a ``.gguf`` name, or a file that exists."""
    return model.endswith(".gguf") or Path(model).is_file()


def target_of(model: str | None, base_url: str | None = None) -> Target:
    """Which rule ``model`` and ``base_url`` fall under (see the module's docstring)."""
    if model is not None and model.startswith(PLUGIN_PREFIX):
        name, _, plugin_model = model.removeprefix(PLUGIN_PREFIX).partition(":")
        if not name:
            raise ConfigurationError(f"{model!r} names no plugin: write plugin:NAME or plugin:NAME:MODEL")
        return Target("plugin", plugin_model or None, base_url, plugin=name)
    if model is None and base_url is None:
        return Target("embedded", None)
    if base_url is not None:
        if not model:
            raise ConfigurationError(f"a server's URL needs a model name (the model's name at {base_url})")
        return Target("server", model, base_url)
    assert model is not None
    if is_gguf_path(model):
        return Target("gguf", model)
    return Target("openai", model)


def base_url_problem(base_url: str) -> str | None:
    """What is wrong with a server's address (``None``: nothing): the SDK needs ``http://`` or ``https://``
    and a host (``127.0.0.1:8080/v1`` alone is not one)."""
    parts = urlsplit(base_url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    hint = f"; did you mean http://{base_url}?" if "://" not in base_url else ""
    return f"{base_url!r} is not an http:// or https:// URL{hint}"


def check_base_url(base_url: str) -> None:
    """Raise :class:`ConfigurationError` naming the problem with a server's address, if it has one."""
    problem = base_url_problem(base_url)
    if problem is not None:
        raise ConfigurationError(f"the server URL {problem}")


def resolve_backend(
    model: Target | str | None,
    base_url: str | None = None,
    *,
    api_key: str | None = None,
    logprobs: bool = False,
    n_threads: int | None = None,
    server_options: Mapping[str, Any] | None = None,
) -> Backend:
    """The backend the rules give for ``model`` and ``base_url`` (or a :class:`Target` already worked out).

    ``api_key`` goes to a server (``None``: the SDK reads ``OPENAI_API_KEY``); ``logprobs`` and ``n_threads``
    to an in-process model (keeping log-probabilities costs memory: only for a strategy that reads them);
    ``server_options`` (``timeout``, ``check_server``, ``max_concurrency`` ...) to
    :class:`~thinkloop.backends.openai.OpenAIBackend`.
    """
    target = model if isinstance(model, Target) else target_of(model, base_url)
    if target.kind == "plugin":
        from thinkloop.backends.plugin import plugin_backend

        assert target.plugin is not None
        return plugin_backend(target.plugin, model=target.model, base_url=target.base_url)
    if target.in_process:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(target.model, n_threads=n_threads, logprobs=logprobs)
    if target.base_url is not None:
        check_base_url(target.base_url)
    from thinkloop.backends.openai import OpenAIBackend

    assert target.model is not None
    return OpenAIBackend(target.model, base_url=target.base_url, api_key=api_key, **dict(server_options or {}))
