"""``import thinkloop`` and ``thinkloop --help`` stay light: heavy optional modules load only when used.

Checked in a fresh interpreter (this test process has already imported everything). Not timed: the
benchmark ``benchmarks/sc_throughput.py`` prints the import time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# openai is a core dependency, but importing its SDK is over half of ``import thinkloop``: it loads when the
# first OpenAIBackend is built.
HEAVY = ("llama_cpp", "matplotlib", "openai", "uvicorn", "starlette", "thinkloop.testing", "thinkloop.bench.plots")

HELP = """
import contextlib, io
from thinkloop.cli import main
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    main(["--help"])
"""


def _heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("what", "code"), [("import thinkloop", "import thinkloop"), ("thinkloop --help", HELP)])
def test_no_heavy_module_is_imported(what: str, code: str) -> None:
    assert _heavy_modules_after(code) == [], what
