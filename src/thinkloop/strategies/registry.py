"""Strategies by name, for the command line and benchmark configs.

A *spec* is ``NAME`` or ``NAME:key=value,key=value`` (``sc:n=8,adaptive=true``). Each value is checked
against the option's type in the strategy's pydantic config (``sc:n=true`` is an error, not ``n=1``);
``null`` clears an option that may be empty. A value holding a comma, a colon or spaces is quoted:
``cot:system_prompt="Be brief, be exact."`` (double quotes take JSON escapes; single quotes are literal).
``inner`` names the strategy that stands where the outer one's model calls stand:
``sc:n=5,inner=critique`` or, with options of its own, ``bon:n=4,inner="cot:max_rounds=2"``.

The spec as typed is the strategy's name everywhere (its ``label``, results, reports).
"""

from __future__ import annotations

import importlib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.fields import FieldInfo

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
    "auto": ("thinkloop.strategies.auto", "Auto", {}),
    "effort": ("thinkloop.strategies.effort", "Effort", {}),
    "deepconf": ("thinkloop.strategies.deepconf", "DeepConf", {}),
    "deepconf-online": ("thinkloop.strategies.deepconf", "DeepConf", {"mode": "online"}),
    "beam": ("thinkloop.strategies.beam", "BeamSearch", {}),
    "dvts": ("thinkloop.strategies.beam", "DVTS", {}),
    "particles": ("thinkloop.strategies.particles", "ParticleFilter", {}),
    "cascade": ("thinkloop.strategies.cascade", "Cascade", {}),
    "usc": ("thinkloop.strategies.usc", "UniversalSelfConsistency", {}),
    "moa": ("thinkloop.strategies.moa", "MixtureOfAgents", {}),
}

VERIFIER_OPTIONS: dict[str, str] = {
    "scorer": "verifier",
    "critic": "verifier",
    "value": "verifier",
    "weighting": "verifier",
    "reward": "verifier",
}
"""Option values that only work when the run is given a verifier (from Python: ``run(..., verifier=...)``)."""

UNUSED_OPTIONS: dict[str, frozenset[str]] = {"tree": frozenset({"system_prompt", "reread"})}
"""Options a strategy's config carries but the strategy never reads: accepted silently, they would mislead."""

MEANINGS: dict[str, str] = {
    "max_tokens": "completion limit per model call",
    "temperature": "sampling temperature (null: the server's default)",
    "system_prompt": "the system message of every call",
    "scorer": "auto: the run's verifier if any, else an LLM judge on the same model",
    "critic": "auto: the run's verifier's feedback if any, else the model critiques itself",
    "value": "auto: the model values each partial solution (verifier: the run's verifier does)",
    "mode": "dfs backtracks; beam (bfs) keeps the best beam_width per depth; mcts runs UCT",
    "adaptive": "stop early once the vote is decided (Adaptive-Consistency)",
    "weighting": "what a vote weighs: none (one each), verifier scores, or mean logprob",
    "equivalence": "how answers are grouped: math (14 = 14.0 = 28/2) or exact text",
    "beam_width": "beam: partial solutions kept per depth",
    "max_depth": "the most steps in one partial solution",
    "exploration": "mcts: the UCT exploration constant",
    "value_max_tokens": "completion limit of each value call",
    "critique_max_tokens": "completion limit of each critique call",
    "n": "candidates to draw",
    "inner": "a strategy spec standing where each model call stands (quote it if it has options)",
}
"""One-line meanings for options whose config field has no description of its own."""


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


def _preset(name: str) -> dict[str, Any]:
    """The options a registered name fixes (``sc-adaptive`` is ``sc`` with ``adaptive=true``)."""
    return dict(STRATEGIES[name][2]) if name in STRATEGIES else {}


# --- parsing --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """An option's value as written: ``quoted`` values are always strings."""

    text: str
    quoted: bool = False


def _split(text: str) -> list[str]:
    """Split on commas outside quotes, keeping the quotes (they mark a string)."""
    parts, current, quote, index = [], [], "", 0
    while index < len(text):
        char = text[index]
        if quote:
            current.append(char)
            if char == "\\" and quote == '"' and index + 1 < len(text):
                current.append(text[index + 1])
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    if quote:
        raise ConfigurationError(f"strategy options {text!r}: a {quote} quote is never closed")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _unquote(raw: str, part: str) -> Raw:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        if raw[0] == "'":
            return Raw(raw[1:-1], quoted=True)
        try:
            return Raw(json.loads(raw), quoted=True)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"strategy option {part!r}: bad quoted value ({exc.msg})") from None
    if raw[:1] in "\"'" or raw[-1:] in "\"'":
        raise ConfigurationError(f"strategy option {part!r}: a quote must enclose the whole value")
    return Raw(raw)


def parse_raw_options(text: str) -> dict[str, Raw]:
    """``key=value,...`` to option names (``-`` read as ``_``) and their values as written."""
    options: dict[str, Raw] = {}
    for part in _split(text):
        key, sep, raw = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigurationError(f"strategy option {part!r} is not of the form key=value")
        if key in options:
            raise ConfigurationError(f"strategy option {key!r} is given twice")
        options[key] = _unquote(raw.strip(), part)
    return options


def parse_options(text: str) -> dict[str, Any]:
    """``key=value,...`` to a dict, values read as JSON where they parse (for callers that need no types)."""
    result: dict[str, Any] = {}
    for key, raw in parse_raw_options(text).items():
        if raw.quoted:
            result[key] = raw.text
            continue
        try:
            result[key] = json.loads(raw.text)
        except json.JSONDecodeError:
            result[key] = raw.text
    return result


def _allows_none(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _typed(name: str, key: str, raw: Raw, field: FieldInfo) -> Any:
    """The value as the option's type, or one line saying what was expected."""
    annotation = field.annotation
    if not raw.quoted and raw.text.lower() in ("null", "none"):
        if _allows_none(annotation):
            return None
        raise ConfigurationError(f"{name}: option {key!r} cannot be null (expected {type_name(annotation)})")
    if raw.quoted:
        return raw.text  # a string; the config says whether a string is allowed
    base = _without_none(annotation)
    text = raw.text
    if base is bool:
        if text.lower() in ("true", "yes", "on"):
            return True
        if text.lower() in ("false", "no", "off"):
            return False
    elif base is int:
        try:
            return int(text)
        except ValueError:
            pass
    elif base is float:
        try:
            return float(text)
        except ValueError:
            pass
    else:
        return text  # strings and choices: the config validates them
    raise ConfigurationError(f"{name}: option {key!r} expects {type_name(annotation)}, got {text!r}")


def _without_none(annotation: Any) -> Any:
    if _allows_none(annotation):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def type_name(annotation: Any) -> str:
    """``int``, ``float or null``, ``one of beam|dfs``: how a type reads in a listing or an error."""
    if _allows_none(annotation):
        return f"{type_name(_without_none(annotation))} or null"
    if typing.get_origin(annotation) is Literal:
        return "one of " + "|".join(str(a) for a in typing.get_args(annotation))
    return {bool: "true|false", int: "an integer", float: "a number", str: "text"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


# --- building -------------------------------------------------------------------------------------------
def split_spec(spec: str) -> tuple[str, str]:
    """``NAME`` and the ``key=value,...`` text of a spec; ``effort:LEVEL`` is short for ``effort:level=LEVEL``."""
    name, _, rest = spec.strip().partition(":")
    name, rest = name.strip(), rest.strip()
    if name == "effort" and rest and "=" not in rest:
        rest = f"level='{rest}'"  # quoted: effort:none is the level, not null
    return name, rest


def build_strategy(spec: str, **overrides: Any) -> Strategy:
    """Build a strategy from ``NAME[:key=value,...]``; ``overrides`` fill options the spec leaves out (and
    apply to an inner strategy too; an override the spec contradicts is an error, never silently dropped).
    The strategy's ``label`` is the spec as given."""
    spec = spec.strip()
    name, rest = split_spec(spec)
    cls = strategy_class(name)
    fields = cls.Config.model_fields
    given = parse_raw_options(rest)
    valid = sorted(fields) + (["inner"] if cls.takes_inner else [])
    unused = UNUSED_OPTIONS.get(name, frozenset())
    options: dict[str, Any] = _preset(name)
    options.update({k: v for k, v in overrides.items() if k in fields and k not in unused})
    inner: Strategy | None = None
    for key, raw in given.items():
        if key == "inner" and cls.takes_inner:
            inner = build_strategy(raw.text, **overrides)
        elif key not in fields or key in unused:
            shown = ", ".join(k for k in valid if k not in unused)
            raise ConfigurationError(f"{name}: unknown option {key!r}; valid options: {shown}")
        else:
            options[key] = _typed(name, key, raw, fields[key])
            if key in overrides and overrides[key] != options[key]:
                raise ConfigurationError(
                    f"{name}: the spec sets {key}={raw.text} but --{key.replace('_', '-')} "
                    f"{_written(overrides[key])} is given too; give it once"
                )
    strategy = cls(**options) if inner is None else cls(inner=inner, **options)
    strategy.spec = spec
    return strategy


def needs_verifier(strategy: Strategy) -> str | None:
    """The option (``critic=verifier``) that makes ``strategy`` or its inner one need a run verifier."""
    values = strategy.config.model_dump()
    for key, wanted in VERIFIER_OPTIONS.items():
        if values.get(key) == wanted:
            return f"{key}={wanted}"
    return needs_verifier(strategy.inner) if strategy.inner is not None else None


def needs_logprobs(strategy: Strategy) -> bool:
    """Whether ``strategy`` (or its inner one) reads token log-probabilities: an in-process model made for
    it must then keep them (``LlamaCppBackend(logprobs=True)``)."""
    if getattr(strategy, "needs_logprobs", False):
        return True
    return needs_logprobs(strategy.inner) if strategy.inner is not None else False


def spec_of(name: str, options: dict[str, Any]) -> str:
    """The canonical spec string for a name and options (sorted, JSON values); bench config ids use it."""
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(options.items()))


# --- listing --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionHelp:
    name: str
    type: str
    default: str
    meaning: str


def option_help(name: str) -> list[OptionHelp]:
    """Every option of strategy ``name``, from its pydantic config: type, default (as it would be written in
    a spec) and a one-line meaning."""
    cls = strategy_class(name)
    preset = _preset(name)
    unused = UNUSED_OPTIONS.get(name, frozenset())
    rows = []
    for key, field in cls.Config.model_fields.items():
        if key in unused:
            continue
        default = preset.get(key, field.default)
        meaning = (field.description or MEANINGS.get(key, "")).rstrip(".")
        if meaning[1:2].islower():
            meaning = meaning[0].lower() + meaning[1:]
        written = default if typing.get_origin(field.annotation) is Literal else _written(default)
        if len(written) > _SHOWN_DEFAULT:
            written = written[: _SHOWN_DEFAULT - 2] + "…" + written[-1]
        rows.append(OptionHelp(key, type_name(field.annotation), written, meaning))
    if cls.takes_inner:
        rows.append(OptionHelp("inner", "a spec", "none", MEANINGS["inner"]))
    return rows


_SHOWN_DEFAULT = 24
"""Longer defaults (the system prompts) are cut in a listing; the source has them whole."""


def _written(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def summary(name: str) -> str:
    """The first line of the strategy's docstring."""
    doc = (strategy_class(name).__doc__ or "").strip().split("\n\n")[0]
    first = " ".join(doc.split()).replace("``", "")
    return first.split(". ")[0].rstrip(".") + "." if first else ""
