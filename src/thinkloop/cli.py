"""The ``thinkloop`` command: a thin shell over the library.

``thinkloop ask "QUESTION"`` answers with the embedded SmolLM2 model in-process unless a backend is named:
``--base-url URL --model NAME`` for any OpenAI-compatible server (the key comes from ``OPENAI_API_KEY``),
``--model NAME`` alone for the OpenAI API, ``--model FILE.gguf`` for another local GGUF model.

Every failure a user can cause (a bad flag, an unknown strategy, an unreachable server, a missing model) is
one line on stderr and a non-zero exit, never a traceback. Heavy modules (the library, rich, llama_cpp) are
imported inside the commands so ``thinkloop --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from thinkloop.backends.base import Backend
    from thinkloop.runtime.result import Result

PROG = "thinkloop"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


CHECK_HELP = (
    "accept only an answer that passes CHECK (repeatable; all must pass): words:12, regex:PATTERN, "
    "number:7.2+-0.05, tests:FILE.py (run in the sandbox), lowercase, no-commas, ends-with:WORD, keyword:WORD*2, "
    "game24:4,7,8,8, sum-product:3. With a check, cot re-prompts with the check's feedback (up to 6 attempts, "
    "temperature 1)"
)


class UsageError(Exception):
    """A bad command line, reported as one line (argparse would print the whole usage block)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The parser, and the ``bench`` command's module when it loads (``None`` otherwise)."""
    from thinkloop import __version__

    parser = _Parser(
        prog=PROG,
        description="Test-time compute for any chat model: reasoning strategies, hard budgets, a visible trace.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ask = commands.add_parser(
        "ask", help="answer one question", description="Answer one question with a reasoning strategy."
    )
    ask.add_argument("question", help="the question to answer")
    ask.add_argument(
        "--strategy", default="cot", metavar="SPEC",
        help="NAME or NAME:key=value,... (direct, cot, sc, sc-adaptive, bon, critique, tree); default: cot",
    )
    ask.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server (needs --model)")
    ask.add_argument(
        "--model", metavar="NAME",
        help="the model name at --base-url or the OpenAI API, or a .gguf file to run in-process "
        "(default: the embedded SmolLM2-135M-Instruct)",
    )
    ask.add_argument("--budget-tokens", type=_positive_int, metavar="N", help="hard limit on billed tokens")
    ask.add_argument("--max-tokens", type=_positive_int, metavar="N", help="completion limit per model call")
    ask.add_argument("--json", action="store_true", help="print the whole result (graph included) as JSON")
    ask.add_argument("--trace", type=Path, metavar="FILE", help="write the run's trace as JSON lines")
    ask.add_argument("--check", action="append", metavar="CHECK", help=CHECK_HELP)

    commands.add_parser(
        "plugins", help="list installed plugins",
        description="List the backends and strategies that installed packages add, and where each comes from.",
    )
    bench = _add_bench(commands)
    from thinkloop.serve import cli as serve_cli

    serve_cli.add_parser(commands)
    return parser, bench


def _add_bench(commands: Any) -> Any:
    """Register ``thinkloop bench`` from :mod:`thinkloop.bench.cli` when it is there and loads."""
    try:
        from thinkloop.bench import cli as bench_cli
    except ModuleNotFoundError as exc:
        if exc.name in {"thinkloop.bench.cli", "thinkloop.bench"}:
            return None
        failure: Exception = exc
    except Exception as exc:  # a broken bench module must not take `thinkloop ask` down with it
        failure = exc
    else:
        bench_cli.add_parser(commands)
        return bench_cli
    broken = commands.add_parser("bench", help="benchmarks (unavailable)", add_help=False)
    broken.add_argument("rest", nargs=argparse.REMAINDER)
    broken.set_defaults(bench_failure=f"the bench command cannot load: {type(failure).__name__}: {failure}")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser, bench_cli = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "ask":
            return ask(args)
        if args.command == "plugins":
            return list_plugins()
        if args.command == "serve":
            from thinkloop.serve import cli as serve_cli

            return serve_cli.main(args, make_backend=make_backend, price_of=_price_of)
        if args.command == "bench":
            failure = getattr(args, "bench_failure", None)
            if failure is not None or bench_cli is None:
                return _fail(failure or "the bench command is not available")
            return int(bench_cli.main(args))
        return _fail(f"unknown command {args.command!r}", EXIT_USAGE)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        return _fail(_describe(exc))


def _describe(exc: BaseException) -> str:
    from thinkloop.exceptions import ThinkloopError

    if isinstance(exc, ThinkloopError):
        return str(exc)
    module = type(exc).__module__.split(".")[0]
    if module == "openai":  # e.g. no API key: the SDK's own message says what to set
        return f"openai: {exc}"
    if isinstance(exc, OSError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc} (set THINKLOOP_DEBUG=1 for the traceback)"


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    if os.environ.get("THINKLOOP_DEBUG") and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    line = " ".join(message.split())  # one line, whatever the message carried (a server's log tail)
    if not line.startswith(f"{PROG}"):
        line = f"{PROG}: error: {line}"
    sys.stderr.write(line + "\n")
    return code


# --- plugins ------------------------------------------------------------------------------------------
def list_plugins() -> int:
    """One line per installed plugin: kind, name, target, distribution; a broken one says why."""
    from thinkloop import plugins

    found = [plugin for kind in plugins.GROUPS for plugin in plugins.plugins(kind)]
    if not found:
        sys.stdout.write("no plugins installed (entry-point groups: thinkloop.backends, thinkloop.strategies)\n")
        return 0
    for plugin in found:
        state = f"cannot load: {plugin.error}" if plugin.error else "ok"
        line = f"{plugin.kind[:-1]:<8} {plugin.name:<16} {plugin.target:<40} {plugin.origin:<24} {state}"
        sys.stdout.write(" ".join(line.split("\n")) + "\n")
    return 0


# --- ask ----------------------------------------------------------------------------------------------
def make_backend(base_url: str | None, model: str | None) -> Backend:
    """The backend the flags name: a server, the OpenAI API, a GGUF file, or the embedded model."""
    if base_url is not None:
        if not model:
            raise UsageError(f"{PROG} ask: error: --base-url needs --model NAME (the model's name at {base_url})")
        return _openai_backend(model, base_url)
    if model is None:
        from thinkloop.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend()
    if model.endswith(".gguf") or Path(model).is_file():
        from thinkloop.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model)
    return _openai_backend(model, None)


def _price_of(model: str) -> Any:
    """The shipped price of a model, or ``None`` (a local model)."""
    from thinkloop.bench.prices import PriceTable

    return PriceTable.default().lookup(model)


def _openai_backend(model: str, base_url: str | None) -> Backend:
    import httpx2

    from thinkloop.backends.openai import OpenAIBackend

    # Keep the SDK's retries (one retry layer) but fail fast on a host that does not answer at all.
    return OpenAIBackend(model, base_url=base_url, timeout=httpx2.Timeout(600.0, connect=5.0))


def ask(args: argparse.Namespace) -> int:
    import anyio

    from thinkloop.runtime.budget import Budget
    from thinkloop.strategies.registry import build_strategy
    from thinkloop.verifiers.spec import check_overrides, verifier_from_checks

    overrides = {"max_tokens": args.max_tokens} if args.max_tokens is not None else {}
    verifier = verifier_from_checks(args.check)
    strategy = build_strategy(args.strategy, **overrides, **check_overrides(args.strategy, verifier))
    budget = Budget(tokens=args.budget_tokens) if args.budget_tokens is not None else None
    backend = make_backend(args.base_url, args.model)

    async def run() -> Result:
        try:
            return await strategy.run(args.question, backend=backend, budget=budget, trace_path=args.trace,
                                      verifier=verifier)
        finally:
            # Close HTTP connections on the loop that opened them, not in a garbage collector later.
            with anyio.CancelScope(shield=True):
                await backend.aclose()

    result = anyio.run(run)
    if args.json:
        sys.stdout.write(json.dumps(result.to_json_dict(), ensure_ascii=False) + "\n")
    elif result.text is not None:
        if verifier is not None:
            from thinkloop.verifiers.spec import verdict_lines

            sys.stdout.write("".join(line + "\n" for line in verdict_lines(result.graph)))
        _print_result(result)
    if result.text is None:
        return _fail(result.error or f"no answer after {account(result)}")
    return 0


def account(result: Result) -> str:
    """One line: calls, tokens, seconds, why it stopped."""
    usage = result.usage
    calls = f"{usage.calls} call" + ("" if usage.calls == 1 else "s")
    tokens = f"{usage.total_tokens} tokens ({usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
    if usage.reasoning_tokens:
        tokens += f", {usage.reasoning_tokens} of them reasoning"
    tokens += ")"
    parts = [calls, tokens, f"{result.latency_s:.1f} s", f"stop: {result.stop_reason}", result.model]
    if usage.calls_without_usage:
        parts.insert(2, f"{usage.calls_without_usage} without usage")
    if result.cost is not None:
        parts.insert(3, f"${result.cost:.4f}")
    if result.trace_path:
        parts.append(f"trace: {result.trace_path}")
    return " · ".join(parts)


def _print_result(result: Result) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    if result.text is not None:
        console.print(Text(result.text.strip()), soft_wrap=True)
    if result.answer is not None:
        console.print(Text.assemble(("Answer: ", "bold"), (result.answer, "bold green")), soft_wrap=True)
    console.print(Text(account(result), style="dim"), soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
