"""``thinkloop serve``: the OpenAI-compatible server (:mod:`thinkloop.serve`) with ``ask``'s backend flags.

The server knows nothing of the command line or the price table; this module hands it both, and builds the
upstream backend with timeouts that fit a server: a connection must open in 5 s, and no attempt may take longer
than the per-request ceiling (``--max-request-seconds``), not ``ask``'s ten minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thinkloop.ask_cli import api_key_from, make_backend
from thinkloop.serve import cli as serve_cli

APP_FACTORY = "thinkloop.serve_cli:worker_app"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    return serve_cli.add_parser(commands)


def _price_of(model: str) -> Any:
    """The shipped price of a model, or ``None`` (a local model)."""
    from thinkloop.bench.prices import PriceTable

    return PriceTable.default().lookup(model)


def upstream_timeout_s(seconds: float | None) -> float:
    """Each upstream attempt's read timeout: the request's whole time at most, and never above 600 s."""
    return min(seconds, 600.0) if seconds else 600.0


def backend_for(args: argparse.Namespace) -> Any:
    """``ask``'s backend for the flags; a server's gets serve's timeouts."""
    model, base_url = args.model, args.base_url
    in_process = base_url is None and (model is None or model.endswith(".gguf") or Path(model).is_file())
    if in_process:  # keeping token log-probabilities costs memory: only when the default strategy reads them
        from thinkloop.strategies.registry import build_strategy, needs_logprobs

        strategy = getattr(args, "strategy", None)
        logprobs = needs_logprobs(build_strategy(strategy)) if strategy else False
        return make_backend(base_url, model, args.api_key_env, logprobs=logprobs)
    import httpx2

    from thinkloop.backends.openai import OpenAIBackend

    timeout = httpx2.Timeout(upstream_timeout_s(args.max_request_seconds), connect=5.0)
    return OpenAIBackend(model, base_url=base_url, api_key=api_key_from(args.api_key_env), timeout=timeout)


def main(args: argparse.Namespace) -> int:
    return serve_cli.main(args, make_backend=backend_for, price_of=_price_of, factory=APP_FACTORY)


def worker_app() -> Any:
    """The app of one ``--workers`` process, from the settings its parent was given."""
    import logging

    args = serve_cli.worker_args()
    logging.basicConfig(level=args.log_level.upper(), format="thinkloop serve: %(levelname)s %(message)s")
    serve_cli.install_log_scrubber()
    return serve_cli.build_app(args, backend_for, _price_of)
