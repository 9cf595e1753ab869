"""The docs cannot drift from the code: their Python runs, their imports exist, their commands parse and run.

Every ```python block of README.md and docs/*.md is compiled and linted for undefined names, and every name it
imports from thinkloop must exist. A block runs (in a fresh interpreter, in a scratch folder) unless the comment
just above it says why it cannot here: ``<!-- docs: no-run: needs a running server -->``. Every ``thinkloop
...`` command line in a shell block must parse with the real command-line parser (flags, choices and all), the
files it names must be shipped, and the commands that need only the embedded model run as written, on a small
input (a short completion limit and one call, so the whole list takes seconds, not minutes).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from thinkloop.cli import UsageError, build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NO_RUN = re.compile(r"<!--\s*docs:\s*no-run:\s*(\S[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    no_run: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = _NO_RUN.search(before)
            found.append(
                Block(
                    page,
                    text.count("\n", 0, match.start()) + 1,
                    match.group(1),
                    match.group(2),
                    reason.group(1) if reason else None,
                )
            )
    return found


PYTHON = [b for b in blocks() if b.language == "python"]
SHELL = [b for b in blocks() if b.language in ("sh", "bash", "shell", "console")]


@pytest.mark.parametrize("block", PYTHON, ids=str)
def test_python_blocks_compile_and_import_what_exists(block: Block) -> None:
    tree = ast.parse(block.code)  # a fragment may await at the top level: compile() checks that below
    compile(block.code, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "thinkloop":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "thinkloop":
                    importlib.import_module(alias.name)
    if block.no_run is None:
        compile(block.code, str(block), "exec")  # a block that runs has no top-level await
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is not installed (the dev extra has it)"
    # F821: an undefined name (``openai`` used without ``import openai``)
    done = subprocess.run(
        [ruff, "check", "--select", "F821", "--stdin-filename", "snippet.py", "-"],
        input=block.code,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{block}: {done.stdout}"


RUNNABLE = [b for b in PYTHON if b.no_run is None]


@pytest.mark.integration
@pytest.mark.timeout(300)  # the getting-started example runs effort="auto" on the embedded model: ~80 s of CPU
@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_python_blocks_run(block: Block, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "THINKLOOP_TRACE"))}
    done = subprocess.run(
        [sys.executable, "-c", block.code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{block} failed:\n{done.stderr[-3000:]}"


def command_lines(code: str) -> list[list[str]]:
    """The ``thinkloop`` invocations in a shell block, as argument lists (continuations joined)."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("#") or not line:
            continue
        for part in re.split(r"\s(?:\|\|?|&&|;)\s", line):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value prefixes
                words.pop(0)
            if words and words[0].endswith("thinkloop") and not words[0].endswith("/thinkloop/"):
                args = [w for w in words[1:] if not w.startswith((">", "2>", "<"))]
                found.append(args)
    return found


COMMANDS = [(block, args) for block in SHELL for args in command_lines(block.code)]


@pytest.mark.parametrize(("block", "args"), COMMANDS, ids=[f"{b}:{' '.join(a)[:60]}" for b, a in COMMANDS])
def test_command_lines_parse(block: Block, args: list[str]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(args)
    except UsageError as exc:
        pytest.fail(f"{block}: thinkloop {' '.join(args)}: {exc}")
    except SystemExit as exc:  # --help / --version print and exit 0
        assert exc.code == 0, f"{block}: thinkloop {' '.join(args)} exits {exc.code}"
    for word in args:
        if word.startswith("tests:"):
            assert (ROOT / word.removeprefix("tests:")).is_file(), f"{block} names {word}, which is not shipped"


def test_the_pages_hold_the_commands_this_file_checks() -> None:
    names = [args[0] for _, args in COMMANDS if args]
    assert len(PYTHON) >= 3 and names.count("ask") >= 10
    assert {"serve", "view", "bench", "export"} <= set(names)


EXIT_KINDS = {3: "check failed", 4: "no answer", 5: "budget exhausted"}


def embedded(args: list[str]) -> bool:
    """Runs on the embedded model with nothing else: no server, no key, no placeholder question."""
    return (
        bool(args)
        and args[0] in ("ask", "view")
        and not {"--base-url", "--model"} & set(args)
        and "..." not in args
        and "traces/" not in args
    )


@pytest.mark.integration
def test_the_embedded_commands_run_as_written_on_a_small_input(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the paths the docs name, from a fresh directory
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL",)}
    seen: set[tuple[str, ...]] = set()
    for block, args in COMMANDS:
        if not embedded(args) or tuple(args) in seen:
            continue
        seen.add(tuple(args))
        small = [*args, "--max-tokens", "24", "--budget-calls", "1"] if args[0] == "ask" else args
        stdin = "What is 12 + 30?\n" if "-" in args else None
        done = subprocess.run(
            [sys.executable, "-m", "thinkloop", *small],
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        what = f"{block}: thinkloop {' '.join(args)}: {done.stderr[-1500:]}"
        assert done.returncode in (0, *EXIT_KINDS), what
        if done.returncode:
            assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1, what
            assert done.stderr.startswith(f"thinkloop: {EXIT_KINDS[done.returncode]}: "), what
        if args[0] == "ask" and "--json" not in args:
            assert " · stop: " in done.stdout.strip().splitlines()[-1], what
    assert len(seen) >= 8
    assert (tmp_path / "run.html").is_file()  # `ask ... --view` then `view run.jsonl` wrote the page
