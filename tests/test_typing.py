"""thinkloop's types reach its users: ``py.typed`` ships, and a user's type checker reads the signatures.

The mypy run checks a user's two small files against the installed package, from outside the repository and
with a cache of its own, so it sees thinkloop exactly as a user's project does (PEP 561: an installed package
without ``py.typed`` is skipped as untyped, and every call to it passes).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from thinkloop import Strategy, think, think_sync

USER_CODE_OK = """\
from thinkloop import Budget, Result, ScriptedBackend, SelfConsistency, think_sync

backend = ScriptedBackend(["Answer: 4"])
result: Result = SelfConsistency(n=3).run_sync("2+2?", backend=backend, budget=Budget(tokens=1000))
answer: str | None = result.answer
again: Result = think_sync("2+2?", backend=backend, effort="low", trace_path="run.jsonl")
"""

USER_CODE_WRONG = """\
from thinkloop import ScriptedBackend, SelfConsistency, think_sync

backend = ScriptedBackend(["Answer: 4"])
SelfConsistency(n=3).run_sync("2+2?", backend=backend, budget=1000)
SelfConsistency(n=3).run_sync("2+2?", backend=backend, budgett=None)
count: int = SelfConsistency(n=3).run_sync("2+2?", backend=backend)
think_sync("2+2?", backend=backend, effort="hard")
"""


def test_the_package_ships_its_py_typed_marker() -> None:
    marker = resources.files("thinkloop").joinpath("py.typed")
    assert marker.is_file(), "thinkloop/py.typed is missing: type checkers would treat thinkloop as untyped"


@pytest.mark.parametrize(("run", "run_sync"), [(Strategy.run, Strategy.run_sync), (think, think_sync)])
def test_each_sync_entry_point_takes_exactly_its_async_twins_parameters(
    run: Callable[..., object], run_sync: Callable[..., object]
) -> None:
    assert inspect.signature(run_sync) == inspect.signature(run)


def test_a_users_code_is_type_checked_against_thinkloop(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    (tmp_path / "ok.py").write_text(USER_CODE_OK)
    (tmp_path / "wrong.py").write_text(USER_CODE_WRONG)
    # the openai SDK's 2,000 modules (and networkx's stubs) would be most of the run; thinkloop's own types are
    # what is under test, so they stay unread (their names become Any)
    (tmp_path / "mypy.ini").write_text("[mypy]\n[mypy-openai.*,networkx.*]\nfollow_imports = skip\n")
    env = {k: v for k, v in os.environ.items() if k not in {"MYPYPATH", "MYPY_CACHE_DIR"}}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-color-output",
            "ok.py",
            "wrong.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    errors = set(re.findall(r"^(\w+\.py):(\d+): error: .*\[([a-z-]+)\]$", done.stdout, re.MULTILINE))
    assert errors == {
        ("wrong.py", "4", "arg-type"),  # budget=1000: an int where a Budget goes
        ("wrong.py", "5", "call-arg"),  # budgett=: no such parameter (a **kwargs signature would accept it)
        ("wrong.py", "6", "assignment"),  # run_sync returns a Result
        ("wrong.py", "7", "arg-type"),  # no effort level "hard"
    }, done.stdout + done.stderr
    assert done.returncode == 1
