"""Plugins: other packages add backends and strategies through entry points, as ``llm``'s plugins do.

A package declares them in its ``pyproject.toml``::

    [project.entry-points."thinkloop.strategies"]
    echo = "my_package.strategies:EchoStrategy"     # a Strategy subclass, used as ``--strategy echo:...``

    [project.entry-points."thinkloop.backends"]
    echo = "my_package.backends:make_backend"       # called as make_backend(model=..., base_url=...)

Plugins load on first use, not with ``import thinkloop``. A plugin that fails to load is reported as one line
(``thinkloop plugins`` shows it) and every other plugin and built-in keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

PluginKind = Literal["backends", "strategies"]

GROUPS: dict[PluginKind, str] = {"backends": "thinkloop.backends", "strategies": "thinkloop.strategies"}
"""The entry-point group of each kind of plugin."""


@dataclass(frozen=True)
class Plugin:
    """One installed entry point: what it names, where it comes from, and what loading it gave."""

    kind: PluginKind
    name: str
    target: str
    """``module:attribute`` as declared."""
    distribution: str | None
    version: str | None
    loaded: Any = None
    error: str | None = None
    """Why it could not be loaded (``None``: it loaded)."""

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}" if self.distribution else "(unknown distribution)"


def _load(kind: PluginKind, point: EntryPoint) -> Plugin:
    dist = point.dist
    plugin = partial(
        Plugin,
        kind=kind,
        name=point.name,
        target=point.value,
        distribution=dist.metadata["Name"] if dist is not None else None,
        version=dist.version if dist is not None else None,
    )
    try:
        loaded = point.load()
    except Exception as exc:  # a broken plugin must not take the others down
        return plugin(error=f"{type(exc).__name__}: {exc}")
    return plugin(loaded=loaded)


@cache
def plugins(kind: PluginKind) -> tuple[Plugin, ...]:
    """Every installed plugin of ``kind``, loaded once per process (sorted by name)."""
    found = entry_points(group=GROUPS[kind])
    return tuple(_load(kind, point) for point in sorted(found, key=lambda p: p.name))


def find(kind: PluginKind, name: str) -> Plugin | None:
    """The plugin of ``kind`` called ``name``, or ``None``."""
    for plugin in plugins(kind):
        if plugin.name == name:
            return plugin
    return None


def refresh() -> None:
    """Forget what was discovered (after installing a plugin in a running process; tests use it)."""
    plugins.cache_clear()
