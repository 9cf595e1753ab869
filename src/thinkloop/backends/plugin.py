"""Backends from plugins: a ``thinkloop.backends`` entry point names a factory that returns a backend."""

from __future__ import annotations

from typing import Any

from thinkloop import plugins
from thinkloop.backends.base import Backend
from thinkloop.exceptions import ConfigurationError


def plugin_backend(name: str, **options: Any) -> Backend:
    """Build the backend the plugin ``name`` provides; ``options`` (``model``, ``base_url``, ...) go to its
    factory. Raises :class:`ConfigurationError` naming the plugin when it is missing, broken or wrong."""
    plugin = plugins.find("backends", name)
    if plugin is None:
        known = ", ".join(p.name for p in plugins.plugins("backends")) or "none installed"
        raise ConfigurationError(f"unknown backend plugin {name!r} (backend plugins: {known})")
    if plugin.error is not None:
        raise ConfigurationError(f"backend plugin {name!r} ({plugin.origin}) cannot load: {plugin.error}")
    try:
        backend = plugin.loaded(**{k: v for k, v in options.items() if v is not None})
    except TypeError as exc:
        raise ConfigurationError(f"backend plugin {name!r} ({plugin.origin}): {exc}") from exc
    if not isinstance(backend, Backend):
        raise ConfigurationError(
            f"backend plugin {name!r} ({plugin.origin}) returned {type(backend).__name__}, which is not a Backend "
            "(it needs name, capabilities, complete, count_prompt_tokens and aclose: subclass BaseBackend)"
        )
    return backend
