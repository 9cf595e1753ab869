"""Prices per million tokens: a shipped table for common hosted models, overridable from a file.

Every cost thinkloop reports (``ask``'s account, ``serve``'s usage, a benchmark's cost column) is only as honest
as its prices, so the table is data (``prices.json`` beside this module, with its date), a user's file
overrides or extends it, and a model with no price (a local model) costs zero rather than a guess. Reasoning
tokens are part of completion tokens and billed as output.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from thinkloop.exceptions import ConfigurationError
from thinkloop.runtime.budget import Price
from thinkloop.types import RunUsage, Usage

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _parse(table: Mapping[str, Any], source: str) -> dict[str, Price]:
    prices: dict[str, Price] = {}
    for model, entry in table.items():
        if model.startswith("_"):
            continue
        try:
            prices[model] = Price.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "price"
            raise ConfigurationError(f"{source}: model {model!r}: field {field!r}: {first['msg']}") from exc
    return prices


class PriceTable:
    """Model name to :class:`Price`. Lookups ignore a provider prefix (``openai/``) and a date suffix
    (``gpt-4o-2024-08-06`` is priced as ``gpt-4o``)."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices: dict[str, Price] = dict(prices or {})

    @classmethod
    def default(cls) -> PriceTable:
        """The shipped table."""
        text = resources.files("thinkloop").joinpath("prices.json").read_text(encoding="utf-8")
        return cls(_parse(json.loads(text), "prices.json"))

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The shipped table, overridden and extended by ``path`` (JSON, or TOML by its suffix)."""
        table = cls.default()
        if path is not None:
            table.prices.update(read_prices(path))
        return table

    def lookup(self, model: str) -> Price | None:
        for name in (model, model.rsplit("/", 1)[-1]):
            if name in self.prices:
                return self.prices[name]
            undated = _DATED.sub("", name)
            if undated in self.prices:
                return self.prices[undated]
        return None

    def cost(self, model: str, usage: RunUsage | Usage) -> float:
        """Dollars for ``usage``; zero for an unpriced (local) model."""
        price = self.lookup(model)
        if price is None:
            return 0.0
        return run_cost(price, usage)


def run_cost(price: Price, usage: RunUsage | Usage) -> float:
    """A run's cost from its summed usage (prices are linear, so the sum's cost is the sum of costs)."""
    single = Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        cached_prompt_tokens=usage.cached_prompt_tokens or 0,
    )
    return price.cost(single) or 0.0


def read_prices(path: str | Path) -> dict[str, Price]:
    """Read a price file: ``{"model": {"input": ..., "output": ..., "cached_input": ...}}``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the price file: {exc.strerror or exc}") from exc
    try:
        table = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: malformed price file: {exc}") from exc
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: a price file is a table of model -> price")
    return _parse(table, str(path))
