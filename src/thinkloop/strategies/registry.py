"""Strategies by name, for the command line and benchmark configs.

A *spec* is ``NAME`` or ``NAME:key=value,key=value`` (``sc:n=8,adaptive=true``). Values are read as JSON
where they parse (numbers, booleans) and as strings otherwise; the strategy's config validates them.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from thinkloop import plugins
from thinkloop.exceptions import ConfigurationError
from thinkloop.strategies.base import Strategy

# name -> (module, class, default options)
STRATEGIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "direct": ("thinkloop.strategies.cot", "Direct", {}),
    "cot": ("thinkloop.strategies.cot", "ChainOfThought", {}),
    "sc": ("thinkloop.strategies.self_consistency", "SelfConsistency", {}),
    "sc-adaptive": ("thinkloop.strategies.self_consistency", "SelfConsistency", {"adaptive": True}),
    "bon": ("thinkloop.strategies.best_of_n", "BestOfN", {}),
    "critique": ("thinkloop.strategies.critique", "CritiqueRevise", {}),
    "tree": ("thinkloop.strategies.tree_search", "TreeSearch", {}),
}


def strategy_class(name: str) -> type[Strategy]:
    """The class a strategy name stands for: a built-in, else an installed plugin's."""
    if name in STRATEGIES:
        module, cls, _ = STRATEGIES[name]
        return getattr(importlib.import_module(module), cls)
    plugin = plugins.find("strategies", name)
    if plugin is None:
        known = ", ".join(sorted({*STRATEGIES, *(p.name for p in plugins.plugins("strategies"))}))
        raise ConfigurationError(f"unknown strategy {name!r}; known strategies: {known}")
    if plugin.error is not None:
        raise ConfigurationError(f"strategy plugin {name!r} ({plugin.origin}) cannot load: {plugin.error}")
    if not (isinstance(plugin.loaded, type) and issubclass(plugin.loaded, Strategy)):
        raise ConfigurationError(f"strategy plugin {name!r} ({plugin.origin}) is not a Strategy subclass")
    return plugin.loaded


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_options(text: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"strategy option {part!r} is not of the form key=value")
        options[key.strip().replace("-", "_")] = _value(raw.strip())
    return options


def build_strategy(spec: str, **overrides: Any) -> Strategy:
    """Build a strategy from ``NAME[:key=value,...]``; ``overrides`` fill options the spec leaves out."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    cls = strategy_class(name)
    defaults = STRATEGIES[name][2] if name in STRATEGIES else {}
    options = {**defaults, **overrides, **parse_options(rest)}
    return cls(**options)


def spec_of(name: str, options: dict[str, Any]) -> str:
    """The canonical spec string for a name and options (sorted, JSON values)."""
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(options.items()))
