"""``thinkloop serve``: an OpenAI-compatible reasoning endpoint on uvicorn.

It takes ``ask``'s backend flags (``--base-url URL --model NAME``, ``--model NAME`` for the OpenAI API,
``--model FILE.gguf``, or nothing for the embedded model), binds 127.0.0.1 unless told otherwise, prints
``thinkloop serve: listening on URL`` once it accepts connections, and stops on SIGTERM or Ctrl-C: runs in
flight get ``--grace-seconds`` to finish, then are cancelled (their upstream calls with them).

The server (:mod:`thinkloop.serve`) knows nothing of the command line or the price table; this module hands
it both, and builds the upstream backend with timeouts that fit a server: a connection must open in 5 s, and no
attempt may take longer than the per-request ceiling (``--max-request-seconds``), not ``ask``'s ten minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from thinkloop.cli.argtypes import non_negative_float, non_negative_int, positive_float, positive_int
from thinkloop.cli.backends import make_backend
from thinkloop.serve.ceiling import DEFAULT_CALLS, DEFAULT_DOLLARS, DEFAULT_SECONDS, DEFAULT_TOKENS
from thinkloop.serve.keys import PERIODS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
APP_FACTORY = "thinkloop.cli.serve:worker_app"
"""The function each ``--workers`` process builds its app with."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    serve = commands.add_parser(
        "serve",
        help="serve an OpenAI-compatible reasoning endpoint",
        description="Serve /v1/chat/completions: any OpenAI client gets a reasoning model with its reasoning "
        "visible (message.reasoning_content) and its cost under a hard budget.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free port)"
    )
    serve.add_argument("--base-url", metavar="URL", help="an upstream OpenAI-compatible server (needs --model)")
    serve.add_argument(
        "--model",
        metavar="NAME",
        help="the model name at --base-url or the OpenAI API, or a .gguf file to run in-process "
        "(default: the embedded SmolLM2-135M-Instruct)",
    )
    serve.add_argument(
        "--strategy",
        default="cot",
        metavar="SPEC",
        help="the default strategy for requests that choose none (default: cot)",
    )
    serve.add_argument(
        "--api-key",
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' (default: $THINKLOOP_API_KEY; unset: no key)",
    )
    serve.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable holding the upstream server's key (default: OPENAI_API_KEY)",
    )
    serve.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=64,
        metavar="N",
        help="runs in flight at most; beyond it a request gets 429 with Retry-After (default: 64)",
    )
    limits = serve.add_argument_group(
        "per-request ceiling",
        "What one request may spend, whatever it asks (0: no limit). A client's budget, "
        "max_tokens and n are clamped to it; the n runs of a request share it; a strategy whose worst case "
        "could not fit is refused with a 400.",
    )
    limits.add_argument(
        "--max-request-tokens",
        type=non_negative_int,
        default=DEFAULT_TOKENS,
        metavar="N",
        help=f"billed tokens, prompt and completion, of all calls (default: {DEFAULT_TOKENS})",
    )
    limits.add_argument(
        "--max-request-calls",
        type=non_negative_int,
        default=DEFAULT_CALLS,
        metavar="N",
        help=f"upstream calls (a strategy's worst case counts samples) (default: {DEFAULT_CALLS})",
    )
    limits.add_argument(
        "--max-request-seconds",
        type=non_negative_float,
        default=DEFAULT_SECONDS,
        metavar="S",
        help=f"wall-clock seconds; also each upstream call's timeout (default: {DEFAULT_SECONDS:g})",
    )
    limits.add_argument(
        "--max-request-dollars",
        type=non_negative_float,
        default=DEFAULT_DOLLARS,
        metavar="D",
        help=f"dollars, when the model's price is known (default: {DEFAULT_DOLLARS:g})",
    )
    serve.add_argument(
        "--budget-tokens",
        type=positive_int,
        metavar="N",
        help="hard token limit on every run (a request may ask for less, never more)",
    )
    serve.add_argument(
        "--max-n",
        type=positive_int,
        default=8,
        metavar="N",
        help="the largest 'n' (independent runs) a request may ask for (default: 8)",
    )
    serve.add_argument(
        "--keep-traces",
        type=int,
        default=256,
        metavar="N",
        help="runs whose trace GET /v1/traces/{id} can return (default: 256)",
    )
    serve.add_argument(
        "--keep-trace-bytes",
        type=positive_int,
        default=64 * 1024 * 1024,
        metavar="N",
        help="kept traces' size at most, estimated from their text (default: 64 MiB)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=4 * 1024 * 1024,
        metavar="N",
        help="largest request body (default: 4 MiB)",
    )
    net = serve.add_argument_group("connections")
    net.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        dest="allowed_hosts",
        help="a Host header to answer (repeatable; bound to loopback the default is localhost, "
        "127.0.0.1 and [::1]; on another address any Host is answered unless this is given)",
    )
    net.add_argument(
        "--max-connections",
        type=positive_int,
        default=512,
        metavar="N",
        help="open connections and requests at most; beyond it uvicorn answers 503 (default: 512)",
    )
    net.add_argument(
        "--header-seconds",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="a request's line and headers must arrive within this (default: 10)",
    )
    net.add_argument(
        "--body-seconds",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="a request's body must arrive within this, else 408 (default: 30)",
    )
    net.add_argument(
        "--keep-alive-seconds",
        type=positive_int,
        default=75,
        metavar="S",
        help="an idle kept-alive connection is closed after this; longer than clients' pools keep "
        "one (httpx: 5 s), so a client never reuses one the server is closing (default: 75)",
    )
    net.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="server processes sharing the port (uvicorn's workers); key allowances and traces "
        "are shared through a sqlite file (default: 1)",
    )
    keys = serve.add_argument_group(
        "named keys", "Keys with an allowance of tokens per period, in a sqlite file that survives restarts."
    )
    keys.add_argument("--keys", metavar="FILE", help="the key file: requests must carry one of its keys")
    keys.add_argument("--add-key", metavar="NAME", help="add a key named NAME to --keys FILE, print it, and exit")
    keys.add_argument(
        "--key-tokens",
        type=positive_int,
        metavar="N",
        help="with --add-key: tokens the key may spend per period (default: no allowance)",
    )
    keys.add_argument(
        "--key-period",
        choices=sorted(PERIODS),
        default="day",
        help="with --add-key: the allowance's period (default: day)",
    )
    keys.add_argument("--remove-key", metavar="NAME", help="remove a key from --keys FILE and exit")
    keys.add_argument("--list-keys", action="store_true", help="list --keys FILE's keys and what each spent, and exit")
    serve.add_argument(
        "--grace-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="on SIGTERM/Ctrl-C, how long runs in flight may finish before they are cancelled",
    )
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return serve


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def allowed_hosts(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The Host headers to answer: those given, else (bound to loopback) the loopback names, else any."""
    if args.allowed_hosts:
        return tuple(h.lower() for h in args.allowed_hosts)
    if args.host in ("127.0.0.1", "::1", "localhost") or args.host.startswith("127."):
        return (*LOOPBACK_NAMES, args.host)
    return None


def make_ceiling(args: argparse.Namespace) -> Any:
    from thinkloop.serve.ceiling import Ceiling

    return Ceiling(
        tokens=args.max_request_tokens or None,
        calls=args.max_request_calls or None,
        seconds=args.max_request_seconds or None,
        dollars=args.max_request_dollars or None,
    )


def make_settings(args: argparse.Namespace, model_name: str, price_of: Callable[[str], Any] | None) -> Any:
    from thinkloop.serve.plan import Settings
    from thinkloop.strategies.registry import build_strategy

    build_strategy(args.strategy)  # a bad default is a startup error, not a 400 on every request
    api_key = args.api_key if args.api_key is not None else os.environ.get("THINKLOOP_API_KEY") or None
    price = price_of(model_name) if price_of is not None else None
    return Settings(
        strategy=args.strategy,
        api_key=api_key,
        max_concurrency=args.max_concurrency,
        budget_tokens=args.budget_tokens,
        max_body_bytes=args.max_body_bytes,
        max_n=args.max_n,
        keep_traces=args.keep_traces,
        keep_trace_bytes=args.keep_trace_bytes,
        prices={model_name: price} if price is not None else {},
        ceiling=make_ceiling(args),
        allowed_hosts=allowed_hosts(args),
        body_seconds=args.body_seconds,
        keys_path=args.keys,
        shared_traces=getattr(args, "shared_traces", None),
    )


def manage_keys(args: argparse.Namespace) -> int | None:
    """``--add-key``, ``--remove-key``, ``--list-keys``: the exit status, or ``None`` to go on serving."""
    from thinkloop.exceptions import ConfigurationError
    from thinkloop.serve.keys import KeyStore

    if not (args.add_key or args.remove_key or args.list_keys):
        return None
    if not args.keys:
        raise ConfigurationError("thinkloop serve: error: --add-key, --remove-key and --list-keys need --keys FILE")
    store = KeyStore(args.keys)
    try:
        if args.add_key:
            try:
                key = store.add(args.add_key, tokens=args.key_tokens, period=PERIODS[args.key_period])
            except ValueError as exc:
                raise ConfigurationError(f"thinkloop serve: error: {exc}") from None
            sys.stdout.write(f"{key}\n")
            sys.stderr.write(f"thinkloop serve: key {args.add_key!r} added to {args.keys} (shown once)\n")
        elif args.remove_key:
            if not store.remove(args.remove_key):
                raise ConfigurationError(f"thinkloop serve: error: no key named {args.remove_key!r} in {args.keys}")
        else:
            for name, tokens, period, spent in store.rows():
                allowance = "no allowance" if tokens is None else f"{tokens} tokens per {period:g} s"
                sys.stdout.write(f"{name}\t{allowance}\t{spent} spent this period\n")
    finally:
        store.close()
    return 0


WORKER_ARGS = "THINKLOOP_SERVE_ARGS"
"""The command line's settings, for ``--workers`` processes (each builds its own app from them)."""


def price_of(model: str) -> Any:
    """The shipped price of a model, or ``None`` (a local model)."""
    from thinkloop.pricing import PriceTable

    return PriceTable.default().lookup(model)


def upstream_timeout_s(seconds: float | None) -> float:
    """Each upstream attempt's read timeout: the request's whole time at most, and never above 600 s."""
    return min(seconds, 600.0) if seconds else 600.0


def backend_for(args: argparse.Namespace) -> Any:
    """``ask``'s backend for the flags (the same rules, :mod:`thinkloop.backends.resolve`); a server's gets
    serve's timeouts."""
    from thinkloop.backends.resolve import target_of

    logprobs = False
    if target_of(args.model, args.base_url).in_process:  # keeping log-probabilities costs memory: only when
        from thinkloop.strategies.registry import build_strategy, needs_logprobs  # the default strategy reads them

        strategy = getattr(args, "strategy", None)
        logprobs = needs_logprobs(build_strategy(strategy)) if strategy else False
    import httpx2

    timeout = httpx2.Timeout(upstream_timeout_s(args.max_request_seconds), connect=5.0)
    return make_backend(
        args.base_url, args.model, args.api_key_env, logprobs=logprobs, server_options={"timeout": timeout}
    )


def main(
    args: argparse.Namespace,
    *,
    make_backend: Callable[[argparse.Namespace], Any] = backend_for,
    price_of: Callable[[str], Any] | None = price_of,
    factory: str | None = APP_FACTORY,
) -> int:
    """Serve until SIGTERM or Ctrl-C. ``make_backend(args)`` is ``ask``'s backend maker with serve's timeouts;
    ``price_of(model)`` gives the served model's price (runs then report their cost, and requests may set a
    dollars budget); ``factory`` names a function that builds the app from :data:`WORKER_ARGS` (``--workers``)."""
    from thinkloop.serve import require_server_packages

    require_server_packages()  # without the serve extra: one line naming it, not uvicorn's ModuleNotFoundError
    import uvicorn

    from thinkloop.exceptions import ConfigurationError
    from thinkloop.serve import protocol

    if args.base_url is not None and not args.model:
        where = args.base_url
        raise ConfigurationError(f"thinkloop serve: error: --base-url needs --model NAME (the model at {where})")
    managed = manage_keys(args)
    if managed is not None:
        return managed
    logging.basicConfig(level=args.log_level.upper(), format="thinkloop serve: %(levelname)s %(message)s")
    install_log_scrubber()
    raise_descriptor_limit(args.max_connections)
    protocol.HeaderDeadline.header_seconds = args.header_seconds
    os.environ[protocol.ENV] = str(args.header_seconds)
    common = dict(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=args.grace_seconds,
        lifespan="on",
        http=protocol.HeaderDeadline,
        limit_concurrency=args.max_connections,
        timeout_keep_alive=args.keep_alive_seconds,
        h11_max_incomplete_event_size=64 * 1024,
    )
    if args.workers > 1:
        return _serve_workers(args, common, factory)
    app = build_app(args, make_backend, price_of)
    server = _Server(uvicorn.Config(app, **common))
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again: make that a normal exit.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except (_Stopped, KeyboardInterrupt):
        sys.stderr.write("thinkloop serve: stopped\n")
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


def build_app(
    args: argparse.Namespace, make_backend: Callable[[argparse.Namespace], Any], price_of: Callable[[str], Any] | None
) -> Any:
    from thinkloop.serve.app import create_app

    backend = make_backend(args)
    return create_app(backend, make_settings(args, backend.name, price_of))


def _serve_workers(args: argparse.Namespace, common: dict[str, Any], factory: str | None) -> int:
    """``--workers N``: uvicorn's supervisor over N processes on one socket, bound (and announced) here."""
    import json
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from thinkloop.exceptions import ConfigurationError

    if factory is None:
        raise ConfigurationError("thinkloop serve: error: --workers needs the app factory of the thinkloop command")
    with tempfile.TemporaryDirectory(prefix="thinkloop-serve-") as folder:
        shared = dict(vars(args))
        shared.pop("handler", None)
        shared = {k: v for k, v in shared.items() if isinstance(v, str | int | float | bool | list | type(None))}
        shared["shared_traces"] = os.path.join(folder, "traces.sqlite")
        os.environ[WORKER_ARGS] = json.dumps(shared)
        config = uvicorn.Config(factory, factory=True, workers=args.workers, **common)
        config.http = "thinkloop.serve.protocol:HeaderDeadline"
        sock = config.bind_socket()
        sock.listen(config.backlog)  # announced now: connections wait in the backlog until a worker is up
        port = sock.getsockname()[1]
        sys.stdout.write(f"thinkloop serve: listening on {_url(args.host, port)}\n")
        sys.stdout.flush()
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
    sys.stderr.write("thinkloop serve: stopped\n")
    return 0


def worker_args() -> argparse.Namespace:
    """The settings a ``--workers`` process was started with."""
    import json

    return argparse.Namespace(**json.loads(os.environ[WORKER_ARGS]))


def worker_app() -> Any:
    """The app of one ``--workers`` process, from the settings its parent was given."""
    args = worker_args()
    logging.basicConfig(level=args.log_level.upper(), format="thinkloop serve: %(levelname)s %(message)s")
    install_log_scrubber()
    return build_app(args, backend_for, price_of)


class _Scrubber(logging.Filter):
    """Scrubs every log record: keys, and credentials in URLs (an upstream ``http://user:pass@host``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from thinkloop.serve.errors import scrub

        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg, record.args = scrub(f"{record.getMessage()}: {type(exc).__name__}: {exc}"), None
            record.exc_info = None  # a traceback's frames may hold the URL too
        return True


def install_log_scrubber() -> None:
    scrubber = _Scrubber()
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrubber)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "thinkloop", "thinkloop.serve"):
        logging.getLogger(name).addFilter(scrubber)


def raise_descriptor_limit(connections: int) -> None:
    """Let the process hold ``--max-connections`` sockets plus its own files, within the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


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
