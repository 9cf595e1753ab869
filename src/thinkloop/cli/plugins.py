"""``thinkloop plugins``: the backends and strategies that installed packages add, and where each comes from."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``plugins`` on the top-level subparsers."""
    return commands.add_parser(
        "plugins",
        help="list installed plugins",
        description="List the backends and strategies that installed packages add, and where each comes from.",
    )


def main(args: argparse.Namespace) -> int:
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
