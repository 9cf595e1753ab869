"""``thinkloop strategies [NAME]``: every strategy's options, generated from its pydantic config.

Each option shows its type, its default for that strategy (``tree`` calls with 128 max tokens where the
others use 512; ``cot`` leaves the temperature to the server) and one line of meaning, so no option has to be
guessed from the source.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``strategies`` on the top-level subparsers."""
    parser = commands.add_parser(
        "strategies",
        help="list the strategies and their options",
        description="List the strategies for --strategy and their options (type, default, meaning). "
        "Give options as NAME:key=value,...; quote a value that holds a comma: "
        'cot:system_prompt="Be brief, be exact."',
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="one strategy (default: all of them)")
    return parser


def render(names: list[str]) -> str:
    """The listing as plain text (stable, so a test can read it and a pipe gets no colour codes)."""
    from thinkloop.strategies.registry import option_help, summary

    blocks = []
    for name in names:
        rows = option_help(name)
        widths = [max(len(getattr(r, f)) for r in rows) for f in ("name", "type", "default")]
        lines = [f"{name}: {summary(name)}"]
        for row in rows:
            cells = [row.name.ljust(widths[0]), row.type.ljust(widths[1]), row.default.ljust(widths[2])]
            lines.append(("  " + "  ".join(cells) + "  " + row.meaning).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def main(args: argparse.Namespace) -> int:
    """Print the listing; an unknown name is the registry's one-line error."""
    from thinkloop.strategies.registry import STRATEGIES, strategy_class

    if args.name is not None:
        strategy_class(args.name)  # names the known strategies when it is not one
    names = [args.name] if args.name is not None else list(STRATEGIES)
    sys.stdout.write(render(names))
    return 0
