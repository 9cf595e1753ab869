"""``python -m thinkloop``: the same as the ``thinkloop`` command."""

from __future__ import annotations

import sys

from thinkloop.cli import main

if __name__ == "__main__":
    sys.exit(main())
