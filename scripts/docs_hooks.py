"""MkDocs hooks for the documentation site (``mkdocs.yml`` names this file).

Why generated pages: the API reference and the results page are made from the code and the committed results
at build time, so neither can drift. Each public name (``__all__`` of ``thinkloop`` and of every package a user
imports) gets exactly one entry, on the page of the package that exports it; a public name with no docstring
fails the build, as does anything MkDocs warns about (``strict: true``).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]

PACKAGES: dict[str, str] = {
    "thinkloop.strategies": "Strategies: the policies that grow the reasoning graph.",
    "thinkloop.backends": "Backends: one async `complete` each; the only place I/O happens.",
    "thinkloop.verifiers": "Verifiers: answer extraction, checks, judges and the program sandbox.",
    "thinkloop.runtime": "Runtime: the engine, budgets, the reasoning graph, traces and results.",
    "thinkloop.bench": "Bench: data sets, the resumable runner, prices and reports.",
    "thinkloop.serve": "Serve: the OpenAI-compatible server.",
    "thinkloop.telemetry": "Telemetry: OpenTelemetry spans for runs and calls.",
    "thinkloop.view": "View: the self-contained trace viewer page.",
    "thinkloop.export": "Export: verified traces as fine-tuning and preference data.",
    "thinkloop.testing": "Testing: the scripted, mock and fault-injecting doubles shipped for your tests.",
}
"""Reference pages, in the order an object is assigned to the first page that exports it."""

RESULTS = {
    "simulated": "The simulated model of mixed difficulty (500 questions)",
    "embedded": "The embedded SmolLM2-135M-Instruct on the shipped sets",
    "embedded-batched": "The embedded model with batched sampling",
    "verifiable": "Checked tasks (code, pH, words, constraints, Game of 24) on the embedded model",
    "effort": "Effort levels on the simulated mix",
}

IMAGES = {"img/effort-accuracy-vs-tokens.png": "benchmarks/results/effort/accuracy-vs-tokens.png"}


def public_names(package: str) -> list[tuple[str, Any]]:
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    if names is None:
        raise PluginError(f"{package} has no __all__: its public names cannot be listed")
    return [(name, getattr(module, name)) for name in names if not name.startswith("__")]


def canonical(value: Any) -> str | None:
    """Where a class or function is defined (what mkdocstrings documents), or ``None`` for plain values."""
    if not (inspect.isclass(value) or inspect.isfunction(value)):
        return None
    return f"{value.__module__}.{value.__qualname__}"


def has_docstring(value: Any) -> bool:
    return bool(value.__doc__ and value.__doc__.strip())


def reference_pages() -> dict[str, str]:
    """``reference/<package>.md`` for every package, ``reference/index.md`` for ``thinkloop`` itself."""
    assigned: dict[str, str] = {}
    missing: list[str] = []
    pages: dict[str, str] = {}
    for package, summary in PACKAGES.items():
        lines = [f"# `{package}`", "", summary, ""]
        for name, value in public_names(package):
            path = canonical(value)
            if path is None:
                lines += [f"## `{name}`", "", f"A constant: `{package}.{name}`.", ""]
                continue
            if not has_docstring(value):
                missing.append(f"{package}.{name}")
            if path in assigned:
                lines += [f"## `{name}`", "", f"See [`{name}`][{path}].", ""]
                continue
            assigned[path] = package
            lines += [f"::: {path}", "    options:", "      heading_level: 2", f"      name: {name}", ""]
        pages[f"reference/{package.split('.')[-1]}.md"] = "\n".join(lines)
    top = [
        "# `thinkloop`",
        "",
        "Everything most programs need, importable from `thinkloop` itself. Each name "
        "links to its entry on its package's page.",
        "",
        "| name | what |",
        "| --- | --- |",
    ]
    own: list[str] = []
    for name, value in public_names("thinkloop"):
        path = canonical(value)
        if path is None:
            top.append(f"| `{name}` | a constant |")
            continue
        if not has_docstring(value):
            missing.append(f"thinkloop.{name}")
        first = inspect.getdoc(value).split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        top.append(f"| [`{name}`][{path}] | {first} |")
        if path not in assigned:
            assigned[path] = "thinkloop"
            own += [f"::: {path}", "    options:", "      heading_level: 2", f"      name: {name}", ""]
    if missing:
        raise PluginError(f"public names without a docstring: {', '.join(sorted(set(missing)))}")
    pages["reference/index.md"] = "\n".join([*top, "", "## Defined at the top level", "", *own])
    return pages


def results_page() -> str:
    """The committed benchmark results, rendered by the same report code that wrote their tables."""
    from thinkloop.bench.report import load_summaries, render

    lines = [
        "# Results",
        "",
        "Every table here is rendered at build time from the results files committed "
        "under `benchmarks/results/`, by the code of `thinkloop bench report`; `benchmarks/README.md` says "
        "how each was measured, on which machine, and what the numbers do not show.",
        "",
    ]
    for folder, title in RESULTS.items():
        results = ROOT / "benchmarks" / "results" / folder / "results.jsonl"
        if not results.is_file():
            raise PluginError(f"the committed results are missing: {results}")
        lines += [
            f"## {title}",
            "",
            f"`benchmarks/results/{folder}/results.jsonl`",
            "",
            render(load_summaries(results), "markdown"),
            "",
        ]
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    from thinkloop import __version__

    config["site_name"] = f"thinkloop {__version__}"
    return config


def on_files(files: Files, config: Any) -> Files:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for path, content in {**reference_pages(), "results.md": results_page(), "changelog.md": changelog}.items():
        files.append(File.generated(config, path, content=content))
    for path, source in IMAGES.items():  # committed plots the guides show, kept where the benchmarks write them
        files.append(File.generated(config, path, content=(ROOT / source).read_bytes()))
    return files
