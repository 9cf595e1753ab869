"""Plugins by entry point: a small distribution installed for the test run adds a strategy and a backend;
a broken plugin is one clear line and everything else keeps working."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from thinkloop import ConfigurationError, plugins
from thinkloop.backends.plugin import plugin_backend
from thinkloop.strategies.registry import build_strategy

PLUGIN_MODULE = '''
from thinkloop import BaseBackend, Capabilities, ChatRequest, Choice, Completion, Outcome, Strategy, Usage


class EchoBackend(BaseBackend):
    def __init__(self, model="echo-model"):
        self._model = model

    @property
    def name(self):
        return self._model

    @property
    def capabilities(self):
        return Capabilities()

    async def complete(self, request: ChatRequest) -> Completion:
        text = "Answer: " + request.messages[-1].content.split()[-1]
        return Completion(choices=(Choice(text=text, finish_reason="stop"),), usage=Usage(prompt_tokens=1,
                          completion_tokens=1), latency_s=0.0)


def make_backend(model="echo-model", **_):
    return EchoBackend(model)


class LastWord(Strategy):
    """Asks once and answers with the last word of the question."""

    name = "last-word"

    async def solve(self, ctx, question, *, parent):
        samples = await self.draw(ctx, question, 1, parent=parent)
        candidate = samples.candidates[0] if samples.candidates else None
        return Outcome(candidate=candidate, stop_reason="completed", attempts=tuple(samples.candidates))
'''

ENTRY_POINTS = """
[thinkloop.strategies]
last-word = tl_echo_plugin:LastWord
broken = tl_missing_module:Nothing

[thinkloop.backends]
echo = tl_echo_plugin:make_backend
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution ``tl-echo-plugin`` on sys.path: its module and a dist-info with entry points, as pip
    leaves them in site-packages."""
    (tmp_path / "tl_echo_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    info = tmp_path / "tl_echo_plugin-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tl-echo-plugin\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.refresh()
    yield tmp_path
    plugins.refresh()
    sys.modules.pop("tl_echo_plugin", None)


def test_a_plugin_strategy_runs_by_its_spec_name(installed: Path) -> None:
    from thinkloop.backends.scripted import ScriptedBackend

    strategy = build_strategy("last-word:max_tokens=8")
    assert type(strategy).__name__ == "LastWord"
    result = strategy.run_sync("say kiwi", backend=ScriptedBackend(["Answer: kiwi"]))
    assert result.answer == "kiwi"


def test_a_plugin_backend_is_built_by_name(installed: Path) -> None:
    backend = plugin_backend("echo", model="parrot", base_url=None)
    assert backend.name == "parrot"
    result = build_strategy("direct").run_sync("repeat after me: banana", backend=backend)
    assert result.answer == "banana"


def test_a_broken_plugin_is_one_clear_error_and_the_rest_still_work(installed: Path) -> None:
    broken = plugins.find("strategies", "broken")
    assert broken is not None and broken.error is not None and "tl_missing_module" in broken.error
    with pytest.raises(ConfigurationError, match=r"strategy plugin 'broken' \(tl-echo-plugin 1.2.3\) cannot load"):
        build_strategy("broken")
    assert build_strategy("last-word") is not None
    assert build_strategy("cot") is not None
    with pytest.raises(ConfigurationError, match=r"known strategies: .*last-word"):
        build_strategy("nope")
    with pytest.raises(ConfigurationError, match=r"unknown backend plugin 'nope' \(backend plugins: echo\)"):
        plugin_backend("nope")


def test_thinkloop_plugins_lists_what_is_installed_and_where_from(installed: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "thinkloop", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.split()[:3] == ["backend", "echo", "tl_echo_plugin:make_backend"] and line.endswith("ok") for line in lines
    ), lines
    assert any("last-word" in line and "tl-echo-plugin 1.2.3" in line and line.endswith("ok") for line in lines)
    assert any("broken" in line and "cannot load: ModuleNotFoundError" in line for line in lines)


def test_no_plugins_says_so() -> None:
    plugins.refresh()
    done = subprocess.run([sys.executable, "-m", "thinkloop", "plugins"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "no plugins installed" in done.stdout


def test_ask_reaches_a_plugin_backend_by_name(installed: Path) -> None:
    """``--model plugin:NAME:MODEL`` is the resolver's first rule, for ask as for serve and bench."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkloop",
            "ask",
            "repeat after me: banana",
            "--model",
            "plugin:echo:parrot",
            "--strategy",
            "direct",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["answer"], result["model"]) == ("banana", "parrot")


def test_serve_and_bench_reach_a_plugin_backend_by_name(installed: Path) -> None:
    from thinkloop.cli.bench import _backends
    from thinkloop.cli.serve import backend_for

    served = backend_for(
        argparse.Namespace(
            model="plugin:echo:parrot", base_url=None, api_key_env=None, strategy="cot", max_request_seconds=30.0
        )
    )
    benched = _backends(
        argparse.Namespace(
            model=["plugin:echo"],
            base_url=[],
            strategy=["cot"],
            simulated=None,
            threads=None,
            concurrency=1,
            timeout=None,
        ),
        dataset=None,
    )
    assert [type(b).__name__ for b in (served, *benched)] == ["EchoBackend", "EchoBackend"]
    assert [b.name for b in (served, *benched)] == ["parrot", "echo-model"]


def test_an_unknown_plugin_from_ask_is_one_line(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from thinkloop.cli import main

    assert main(["ask", "q", "--model", "plugin:nope"]) == 1
    assert capsys.readouterr().err == "thinkloop: error: unknown backend plugin 'nope' (backend plugins: echo)\n"
