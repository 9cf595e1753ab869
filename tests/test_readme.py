"""The README followed literally works: its Python snippets import what they use, every ``thinkloop`` command
in it parses, the files it names exist, and the commands that run on the embedded model run as written
(on a small input: a short completion limit and one call, so the whole list takes seconds, not minutes).

The first command's full run is in ``test_examples_cases.py``; each example script's in ``test_examples.py``.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXIT_KINDS = {3: "check failed", 4: "no answer", 5: "budget exhausted"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def commands() -> list[list[str]]:
    """Every ``thinkloop`` command in the README's shell blocks, as argv after ``thinkloop``."""
    found = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "|" in words:
                words = words[words.index("|") + 1:]
            if "&&" in words:
                words = words[words.index("&&") + 1:]
            if words and words[0] in ("thinkloop", ".venv/bin/thinkloop"):
                found.append(words[1:])
    return found


COMMANDS = commands()


def test_the_readme_has_the_commands_this_file_checks() -> None:
    asks = [c for c in COMMANDS if c[0] == "ask"]
    assert len(asks) >= 10 and any(c[0] == "serve" for c in COMMANDS) and any(c[0] == "view" for c in COMMANDS)


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv)[:60])
def test_every_command_parses_and_every_file_it_names_exists(argv: list[str]) -> None:
    from thinkloop.cli import build_parser

    build_parser().parse_args(argv)  # a flag the README invents fails here (UsageError)
    for word in argv:
        if word.startswith("tests:"):
            assert (ROOT / word.removeprefix("tests:")).is_file(), f"the README names {word}, which is not shipped"


@pytest.mark.parametrize("snippet", blocks("python"), ids=lambda s: s.split("\n", 1)[0][:40])
def test_every_python_snippet_imports_what_it_uses(snippet: str) -> None:
    ast.parse(snippet)
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra has it)")
    # F821: an undefined name (``openai`` used without ``import openai``). ``await`` at top level is the README's
    # shorthand inside an async function, which F704 would flag; it is not checked here.
    done = subprocess.run([ruff, "check", "--select", "F821", "--stdin-filename", "snippet.py", "-"],
                          input=snippet, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def embedded(argv: list[str]) -> bool:
    """Runs on the embedded model with nothing else: no server, no key, no placeholder question."""
    return argv[0] in ("ask", "view") and not {"--base-url", "--model"} & set(argv) and "..." not in argv \
        and "traces/" not in argv


@pytest.mark.integration
def test_the_embedded_commands_run_as_written_on_a_small_input(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the paths the README names, from a fresh directory
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL",)}
    ran = 0
    for argv in filter(embedded, COMMANDS):
        small = [*argv, "--max-tokens", "24", "--budget-calls", "1"] if argv[0] == "ask" else argv
        stdin = "What is 12 + 30?\n" if "-" in argv else None
        done = subprocess.run([sys.executable, "-m", "thinkloop", *small], cwd=tmp_path, input=stdin,
                              capture_output=True, text=True, timeout=300, env=env)
        what = f"thinkloop {' '.join(argv)}: {done.stderr[-1500:]}"
        assert done.returncode in (0, *EXIT_KINDS), what
        if done.returncode:
            assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1, what
            assert done.stderr.startswith(f"thinkloop: {EXIT_KINDS[done.returncode]}: "), what
        if argv[0] == "ask" and "--json" not in argv:
            assert " · stop: " in done.stdout.strip().splitlines()[-1], what
        ran += 1
    assert ran >= 8
    assert (tmp_path / "run.html").is_file()  # `ask ... --view` then `view run.jsonl` wrote the page
