"""What the package declares: one version everywhere, the license it names, every third-party import declared,
and the server's packages in the ``serve`` extra, with one clear line where they are missing."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import thinkloop

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "thinkloop"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
"""https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte."""

HIDE_SERVER = "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None; "
"""A program prefix under which Starlette and uvicorn cannot be imported: an install without the extra."""


def _requirement_names() -> set[str]:
    """Every distribution the installed thinkloop names, in its dependencies or any extra."""
    return {_name(requirement) for requirement in importlib.metadata.requires("thinkloop") or []}


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (``llama-cpp-python[server]>=0.3.8``: llama-cpp-python)."""
    return _normalized(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_version_is_written_once_and_everything_shows_that_one() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    source = ROOT / PYPROJECT["tool"]["hatch"]["version"]["path"]
    assert source == Path(thinkloop.__file__)
    assert re.findall(r'^__version__ = "(.+)"$', source.read_text(), re.M) == [thinkloop.__version__]
    assert importlib.metadata.version("thinkloop") == thinkloop.__version__
    shown = subprocess.run([sys.executable, "-m", "thinkloop", "--version"], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"thinkloop {thinkloop.__version__}"


def test_spans_carry_the_package_version() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from thinkloop.telemetry.otel import SpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with SpanExporter(tracer_provider=provider).tracer.start_as_current_span("run"):
        pass
    [span] = spans.get_finished_spans()
    assert span.instrumentation_scope is not None and span.instrumentation_scope.version == thinkloop.__version__


def test_the_license_is_the_apache_2_text_the_metadata_names() -> None:
    license_file = ROOT / "LICENSE"
    assert hashlib.sha256(license_file.read_bytes()).hexdigest() == APACHE_2_SHA256
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    metadata = importlib.metadata.metadata("thinkloop")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    shipped = [f for f in importlib.metadata.files("thinkloop") or [] if f.name == "LICENSE"]
    assert shipped and Path(shipped[0].locate()).read_bytes() == license_file.read_bytes()


def _third_party_imports() -> dict[str, set[str]]:
    """Each third-party top-level module ``src/thinkloop`` imports, with the files that import it."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("thinkloop", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(SRC)))
    return found


def test_every_third_party_import_is_declared() -> None:
    # A package used directly but reached only through another's dependencies (httpx2 through openai)
    # breaks the day that other package stops depending on it.
    declared = _requirement_names()
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module: sorted(files)
        for module, files in _third_party_imports().items()
        if not {_normalized(d) for d in distributions.get(module, [module])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_server_packages_are_an_extra_and_imported_only_by_the_server_and_its_command() -> None:
    assert not {_name(r) for r in PYPROJECT["project"]["dependencies"]} & {"starlette", "uvicorn"}
    assert {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["serve"]} == {"starlette", "uvicorn"}
    for module in ("starlette", "uvicorn"):
        importers = _third_party_imports()[module]
        assert all(file.startswith("serve/") or file == "cli/serve.py" for file in importers), (module, importers)


def test_without_the_serve_extra_the_library_and_the_command_still_load() -> None:
    code = HIDE_SERVER + (
        "import thinkloop; from thinkloop import Engine, ScriptedBackend, ChainOfThought; "
        "from thinkloop.cli import build_parser; build_parser().parse_args(['ask', 'x']); print('loaded')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded"


def test_without_the_serve_extra_the_server_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import thinkloop.serve
    from thinkloop.exceptions import ConfigurationError

    thinkloop.serve.require_server_packages()  # installed here: nothing to say
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ConfigurationError, match=r"needs uvicorn,.*pip install 'thinkloop\[serve\]'"):
        thinkloop.serve.require_server_packages()
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(ConfigurationError, match=r"needs starlette and uvicorn,.*pip install 'thinkloop\[serve\]'"):
        thinkloop.serve.create_app  # noqa: B018


def test_serve_without_the_extra_is_one_line_naming_it() -> None:
    code = HIDE_SERVER + "from thinkloop.cli import main; sys.exit(main(['serve', '--port', '0']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert "pip install 'thinkloop[serve]'" in out.stderr
    assert "unexpected" not in out.stderr and "Traceback" not in out.stderr
