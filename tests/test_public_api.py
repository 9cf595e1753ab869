"""The façade: ``thinkloop.__all__`` is exactly the public names, and every user-facing class is in it."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types

import pytest

import thinkloop
from thinkloop.strategies.registry import STRATEGIES


def test_every_name_in_all_is_importable() -> None:
    assert len(thinkloop.__all__) == len(set(thinkloop.__all__)), "duplicates in __all__"
    for name in thinkloop.__all__:
        assert hasattr(thinkloop, name), f"thinkloop.__all__ names {name!r}, which thinkloop lacks"
    namespace: dict[str, object] = {}
    exec("from thinkloop import *", namespace)  # the star import is what is under test
    assert set(thinkloop.__all__) <= set(namespace)


def test_all_covers_every_public_name_of_the_package() -> None:
    public = {
        name
        for name, value in vars(thinkloop).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(thinkloop.__all__), f"public but not in __all__: {sorted(public - set(thinkloop.__all__))}"


def _classes_in(module_name: str) -> list[type]:
    module = importlib.import_module(module_name)
    return [
        value
        for name, value in vars(module).items()
        if inspect.isclass(value) and value.__module__ == module_name and not name.startswith("_")
    ]


def test_every_exception_is_exported() -> None:
    missing = [cls.__name__ for cls in _classes_in("thinkloop.exceptions") if cls.__name__ not in thinkloop.__all__]
    assert not missing, f"exceptions missing from __all__: {missing}"


@pytest.mark.parametrize(
    "module", ["thinkloop.backends.openai", "thinkloop.backends.scripted", "thinkloop.backends.llamacpp"]
)
def test_every_backend_is_exported(module: str) -> None:
    backends = [cls for cls in _classes_in(module) if callable(getattr(cls, "complete", None))]
    assert backends, f"no backend class found in {module}"
    for cls in backends:
        assert cls.__name__ in thinkloop.__all__, f"{cls.__name__} ({module}) is not exported"
        assert getattr(thinkloop, cls.__name__) is cls


def test_every_registered_strategy_is_exported() -> None:
    for name, (module, cls_name, _) in STRATEGIES.items():
        cls = getattr(importlib.import_module(module), cls_name)
        assert cls_name in thinkloop.__all__, f"strategy {name!r} ({cls_name}) is not exported"
        assert getattr(thinkloop, cls_name) is cls


def test_core_types_and_runtime_are_exported() -> None:
    for name in [
        "ChatRequest",
        "Completion",
        "Usage",
        "RunUsage",
        "Message",
        "Choice",
        "Backend",
        "Capabilities",
        "Engine",
        "Budget",
        "Price",
        "Result",
        "ReasoningGraph",
        "Trace",
        "Strategy",
        "Verifier",
        "Verdict",
        "managed_llama_server",
        "__version__",
    ]:
        assert name in thinkloop.__all__, name


def test_importing_thinkloop_loads_no_model_runtime() -> None:
    # The embedded model and plotting are heavy: they load when used, not when thinkloop is imported.
    code = "import sys, thinkloop; print(sorted(m for m in ('llama_cpp', 'matplotlib', 'llm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_type_checkers_see_every_name_that_is_loaded_on_first_use() -> None:
    # The package's TYPE_CHECKING imports are its one list of public names: mypy, pyright and IDEs read them,
    # and the package reads them into the table that loads each name on first use.
    import ast
    from pathlib import Path

    tree = ast.parse(Path(thinkloop.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    imports = [node for node in block.body if isinstance(node, ast.ImportFrom)]
    assert len(imports) == len(block.body), "only 'from MODULE import NAME as NAME' lines belong in the block"
    aliases = [(node.module, alias) for node in imports for alias in node.names]
    # `NAME as NAME` marks a re-export for checkers run with no implicit re-export (mypy --strict, pyright)
    assert [a.name for _, a in aliases if a.asname != a.name] == []
    assert {a.name for _, a in aliases} == set(thinkloop.__all__) - {"__version__"}
    for module, alias in aliases:  # and each resolves, lazily, to the object the type checker was shown
        assert getattr(thinkloop, alias.name) is getattr(importlib.import_module(module), alias.name)


def test_a_name_added_to_the_type_checking_block_is_public_and_loaded_on_first_use(tmp_path, monkeypatch) -> None:
    from thinkloop.types import exports_of_imports

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\n\n"
        "from thinkloop.types import exports_of_imports\n\n"
        "VERSION = '1'\n\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.heavy import Thing as Thing\n"
        "    from pkg.heavy import helper as helper\n\n"
        "__all__, __getattr__, __dir__ = exports_of_imports(__name__, __file__, extra=['VERSION'])\n"
    )
    (package / "heavy.py").write_text("class Thing: ...\ndef helper() -> int:\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pkg", raising=False)
    monkeypatch.delitem(sys.modules, "pkg.heavy", raising=False)
    pkg = importlib.import_module("pkg")
    assert pkg.__all__ == ["Thing", "helper", "VERSION"]
    assert dir(pkg) == sorted(pkg.__all__)
    assert "pkg.heavy" not in sys.modules  # nothing loaded until asked for
    assert pkg.helper() == 7
    assert "helper" in vars(pkg)  # kept: later reads are plain attribute reads
    assert pkg.Thing is sys.modules["pkg.heavy"].Thing
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'Other'"):
        pkg.Other  # noqa: B018
    (tmp_path / "bare.py").write_text("X = 1\n")
    with pytest.raises(ImportError, match="no 'if TYPE_CHECKING:' block"):
        exports_of_imports("bare", str(tmp_path / "bare.py"))
    # a line the table would not read as type checkers do is refused, not skipped
    for line in (
        "from pkg.heavy import Thing",
        "from pkg.heavy import (Thing as Thing, helper as helper)",
        "from pkg.heavy import Thing as Other",
        "import pkg.heavy",
    ):
        (tmp_path / "odd.py").write_text(f"import typing\nif typing.TYPE_CHECKING:\n    {line}\n")
        with pytest.raises(ImportError, match="expected 'from MODULE import NAME as NAME'"):
            exports_of_imports("odd", str(tmp_path / "odd.py"))


def test_importing_thinkloop_loads_what_is_used_and_no_more() -> None:
    # Names load on first use: the HTTP client, the sandbox and every strategy stay out of a program that
    # only runs the engine, and so out of its import time and of every full garbage collection.
    code = (
        "import sys; from thinkloop import Engine, Budget, ScriptedBackend; "
        "print(sorted(m for m in ('httpx2', 'thinkloop.backends.openai', 'thinkloop.verifiers.sandbox', "
        "'thinkloop.strategies.tree_search') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        thinkloop.NoSuchThing  # noqa: B018
