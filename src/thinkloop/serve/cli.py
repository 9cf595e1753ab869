"""``thinkloop serve``: an OpenAI-compatible reasoning endpoint on uvicorn.

It takes ``ask``'s backend flags (``--base-url URL --model NAME``, ``--model NAME`` for the OpenAI API,
``--model FILE.gguf``, or nothing for the embedded model), binds 127.0.0.1 unless told otherwise, prints
``thinkloop serve: listening on URL`` once it accepts connections, and stops on SIGTERM or Ctrl-C: runs in
flight get ``--grace-seconds`` to finish, then are cancelled (their upstream calls with them).

The ``thinkloop`` command sits above this package (the layers contract in ``pyproject.toml``), so it hands
:func:`main` the two things that live up there: ``ask``'s backend maker and the price table's lookup.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from thinkloop.argtypes import positive_int

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def add_parser(commands: Any) -> argparse.ArgumentParser:
    serve = commands.add_parser(
        "serve", help="serve an OpenAI-compatible reasoning endpoint",
        description="Serve /v1/chat/completions: any OpenAI client gets a reasoning model with its reasoning "
        "visible (message.reasoning_content) and its cost under a hard budget.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port (default: {DEFAULT_PORT}; 0: any free port)")
    serve.add_argument("--base-url", metavar="URL", help="an upstream OpenAI-compatible server (needs --model)")
    serve.add_argument(
        "--model", metavar="NAME",
        help="the model name at --base-url or the OpenAI API, or a .gguf file to run in-process "
        "(default: the embedded SmolLM2-135M-Instruct)",
    )
    serve.add_argument("--strategy", default="cot", metavar="SPEC",
                       help="the default strategy for requests that choose none (default: cot)")
    serve.add_argument("--api-key", metavar="KEY",
                       help="require 'Authorization: Bearer KEY' (default: $THINKLOOP_API_KEY; unset: no key)")
    serve.add_argument("--max-concurrency", type=positive_int, default=64, metavar="N",
                       help="runs in flight at most; beyond it a request gets 429 with Retry-After (default: 64)")
    serve.add_argument("--budget-tokens", type=positive_int, metavar="N",
                       help="hard token limit on every run (a request may ask for less, never more)")
    serve.add_argument("--max-n", type=positive_int, default=8, metavar="N",
                       help="the largest 'n' (independent runs) a request may ask for (default: 8)")
    serve.add_argument("--keep-traces", type=int, default=256, metavar="N",
                       help="runs whose trace GET /v1/traces/{id} can return (default: 256)")
    serve.add_argument("--max-body-bytes", type=positive_int, default=4 * 1024 * 1024, metavar="N",
                       help="largest request body (default: 4 MiB)")
    serve.add_argument("--grace-seconds", type=float, default=5.0, metavar="S",
                       help="on SIGTERM/Ctrl-C, how long runs in flight may finish before they are cancelled")
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return serve


def make_settings(args: argparse.Namespace, model_name: str, price_of: Callable[[str], Any] | None) -> Any:
    from thinkloop.serve.plan import Settings
    from thinkloop.strategies.registry import build_strategy

    build_strategy(args.strategy)  # a bad default is a startup error, not a 400 on every request
    api_key = args.api_key if args.api_key is not None else os.environ.get("THINKLOOP_API_KEY") or None
    price = price_of(model_name) if price_of is not None else None
    return Settings(
        strategy=args.strategy, api_key=api_key, max_concurrency=args.max_concurrency,
        budget_tokens=args.budget_tokens, max_body_bytes=args.max_body_bytes, max_n=args.max_n,
        keep_traces=args.keep_traces, prices={model_name: price} if price is not None else {},
    )


def main(
    args: argparse.Namespace, *, make_backend: Callable[[str | None, str | None], Any],
    price_of: Callable[[str], Any] | None = None,
) -> int:
    """Serve until SIGTERM or Ctrl-C. ``make_backend(base_url, model)`` is ``ask``'s; ``price_of(model)`` gives
    the served model's price (runs then report their cost, and requests may set a dollars budget)."""
    import uvicorn

    from thinkloop.exceptions import ConfigurationError
    from thinkloop.serve.app import create_app

    if args.base_url is not None and not args.model:
        where = args.base_url
        raise ConfigurationError(f"thinkloop serve: error: --base-url needs --model NAME (the model at {where})")
    logging.basicConfig(level=args.log_level.upper(), format="thinkloop serve: %(levelname)s %(message)s")
    backend = make_backend(args.base_url, args.model)
    settings = make_settings(args, backend.name, price_of)
    app = create_app(backend, settings)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
        timeout_graceful_shutdown=args.grace_seconds, lifespan="on",
    )
    server = _Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again: make that a normal exit.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except (_Stopped, KeyboardInterrupt):
        sys.stderr.write("thinkloop serve: stopped\n")
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


class _Stopped(Exception):
    """SIGTERM, raised again by uvicorn after its graceful shutdown."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class _Server:
    """uvicorn's server, announcing its URL (the real port when ``--port 0``) once it accepts connections."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Announcing(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started and not self.should_exit:
                    port = self.servers[0].sockets[0].getsockname()[1] if self.servers else config.port
                    sys.stdout.write(f"thinkloop serve: listening on {_url(config.host, port)}\n")
                    sys.stdout.flush()

        return Announcing(config)
