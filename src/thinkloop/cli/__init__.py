"""The ``thinkloop`` command: a thin shell that registers the commands and turns failures into one line.

Every command lives in this package, one module each with ``add_parser(commands)`` and
``main(args) -> int``: :mod:`~thinkloop.cli.ask`, :mod:`~thinkloop.cli.serve`, :mod:`~thinkloop.cli.strategies`,
:mod:`~thinkloop.cli.plugins`, :mod:`~thinkloop.cli.view`, :mod:`~thinkloop.cli.export` and
:mod:`~thinkloop.cli.bench`; the argument types they share are in :mod:`~thinkloop.cli.argtypes`. The package
sits above everything else in the layer contract (``pyproject.toml``), so a command may use any part of the
library. Registering another command is one line in :data:`COMMANDS`.

Every failure a user can cause (a bad flag, an unknown strategy, an unreachable server, a missing model) is
one line on stderr and a non-zero exit, never a traceback. Heavy modules (the library, rich, llama_cpp) are
imported inside the commands so ``thinkloop --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, NoReturn

PROG = "thinkloop"
EXIT_OK = 0
"""Answered (and, when checked, the check passed); an open question's reply with no answer line counts."""
EXIT_ERROR = 1
"""An error: a server that cannot be reached, a failed backend, a bad file."""
EXIT_USAGE = 2
"""A bad command line (argparse's code)."""
EXIT_CHECK_FAILED = 3
"""A --check was given and the answer returned did not pass it."""
EXIT_NO_ANSWER = 4
"""No reply, or no answer in the reply where one was asked for (--check number:..., --require-answer)."""
EXIT_BUDGET = 5
"""The budget or time limit ran out before an answer (a passing one, when checked)."""
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line, reported as one line (argparse would print the whole usage block)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


COMMANDS = (
    "thinkloop.cli.ask",
    "thinkloop.cli.serve",
    "thinkloop.cli.strategies",
    "thinkloop.cli.plugins",
    "thinkloop.cli.view",
    "thinkloop.cli.export",
)
"""Modules with ``add_parser(commands)`` and ``main(args) -> int``: one line here registers a command."""
OPTIONAL_COMMANDS = ("thinkloop.cli.bench",)
"""Commands that must not take the others down when they fail to load (they print why when called)."""


def build_parser() -> argparse.ArgumentParser:
    """The parser; each command's parser carries its ``handler`` (``main(args)``) as a default."""
    from thinkloop import __version__

    parser = _Parser(
        prog=PROG,
        description="Test-time compute for any chat model: reasoning strategies, hard budgets, a visible trace.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(name)
        module.add_parser(commands).set_defaults(handler=module.main)
    for name in OPTIONAL_COMMANDS:
        _add_optional(commands, name)
    return parser


def _add_optional(commands: Any, name: str) -> None:
    """Register a command from ``name`` when it loads; else a stand-in that says why it cannot run."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return
        failure: Exception = exc
    except Exception as exc:  # a broken optional module must not take `thinkloop ask` down with it
        failure = exc
    else:
        module.add_parser(commands).set_defaults(handler=module.main)
        return
    command = name.split(".")[-1]
    broken = commands.add_parser(command, help=f"{command} (unavailable)", add_help=False)
    broken.add_argument("rest", nargs=argparse.REMAINDER)
    broken.set_defaults(
        handler=lambda _args: fail(f"the {command} command cannot load: {type(failure).__name__}: {failure}")
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args.handler(args))
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        return fail(_describe(exc))


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


def fail(message: str, code: int = EXIT_ERROR, *, kind: str = "error") -> int:
    """Print ``message`` as one line on stderr (``thinkloop: error: ...``, or ``thinkloop: KIND: ...``) and
    return ``code``."""
    if os.environ.get("THINKLOOP_DEBUG") and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    line = " ".join(message.split())  # one line, whatever the message carried (a server's log tail)
    if not line.startswith(f"{PROG}"):
        line = f"{PROG}: {kind}: {line}"
    sys.stderr.write(line + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
