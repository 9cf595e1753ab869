"""``thinkloop serve``: the OpenAI-compatible server (:mod:`thinkloop.serve`) with ``ask``'s backend flags.

The server knows nothing of the command line or the price table; this module hands it both.
"""

from __future__ import annotations

import argparse
from typing import Any

from thinkloop.ask_cli import make_backend
from thinkloop.serve import cli as serve_cli


def add_parser(commands: Any) -> argparse.ArgumentParser:
    return serve_cli.add_parser(commands)


def _price_of(model: str) -> Any:
    """The shipped price of a model, or ``None`` (a local model)."""
    from thinkloop.bench.prices import PriceTable

    return PriceTable.default().lookup(model)


def main(args: argparse.Namespace) -> int:
    return serve_cli.main(args, make_backend=lambda base_url, model: make_backend(base_url, model), price_of=_price_of)
