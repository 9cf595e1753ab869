"""One name-to-backend resolver for ask, serve and bench: each rule of :mod:`thinkloop.backends.resolve`, and
each command reaching it with its own settings only."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from thinkloop.backends.llamacpp import LlamaCppBackend
from thinkloop.backends.openai import OpenAIBackend
from thinkloop.backends.resolve import check_base_url, resolve_backend, target_of
from thinkloop.exceptions import ConfigurationError


@pytest.mark.parametrize(
    ("model", "base_url", "kind", "resolved_model", "plugin"),
    [
        ("plugin:echo", None, "plugin", None, "echo"),
        ("plugin:echo:parrot", "http://127.0.0.1:9/v1", "plugin", "parrot", "echo"),
        ("plugin:ollama-ish:llama3:8b", None, "plugin", "llama3:8b", "ollama-ish"),  # a model's own colons stay
        (None, None, "embedded", None, None),
        ("served.gguf", "http://127.0.0.1:9/v1", "server", "served.gguf", None),  # a URL wins over a .gguf name
        ("gpt-4o-mini", "http://127.0.0.1:9/v1", "server", "gpt-4o-mini", None),
        ("models/absent.gguf", None, "gguf", "models/absent.gguf", None),
        ("gpt-4o-mini", None, "openai", "gpt-4o-mini", None),
    ],
)
def test_each_rule(
    model: str | None, base_url: str | None, kind: str, resolved_model: str | None, plugin: str | None
) -> None:
    target = target_of(model, base_url)
    assert (target.kind, target.model, target.plugin) == (kind, resolved_model, plugin)
    assert target.in_process is (kind in ("embedded", "gguf"))


def test_an_existing_file_runs_in_process_whatever_its_name(tmp_path: Path) -> None:
    model = tmp_path / "weights.bin"
    model.write_bytes(b"GGUF")
    assert target_of(str(model)).kind == "gguf"


@pytest.mark.parametrize(
    ("model", "base_url", "message"),
    [
        ("plugin:", None, "names no plugin"),
        (None, "http://127.0.0.1:9/v1", "needs a model name"),
    ],
)
def test_names_that_resolve_to_nothing_say_why(model: str | None, base_url: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        target_of(model, base_url)


def test_a_server_gets_the_settings_its_command_passes() -> None:
    backend = resolve_backend(
        "mock", "http://127.0.0.1:9/v1", api_key="k", server_options={"check_server": True, "max_concurrency": 3}
    )
    assert isinstance(backend, OpenAIBackend)
    assert (backend.name, backend.check_server_first) == ("mock", True)


def test_a_bad_server_url_is_refused_before_any_backend_is_built() -> None:
    with pytest.raises(ConfigurationError, match=r"'127.0.0.1:8080/v1' is not an http:// or https:// URL; did you"):
        check_base_url("127.0.0.1:8080/v1")
    with pytest.raises(ConfigurationError, match="not an http"):
        resolve_backend("mock", "ftp://example.com")


def test_in_process_models_get_threads_and_logprobs() -> None:
    backend = resolve_backend(None, n_threads=1, logprobs=True)  # the model loads on first use, not here
    assert isinstance(backend, LlamaCppBackend)
    assert backend.capabilities.logprobs


def _bench_args(models: list[str], urls: list[str]) -> argparse.Namespace:
    return argparse.Namespace(
        model=models, base_url=urls, strategy=["cot"], simulated=None, threads=None, concurrency=1, timeout=None
    )


@pytest.mark.parametrize("model", ["mock", "gpt-4o-mini"])
def test_ask_serve_and_bench_build_the_same_backend_for_the_same_flags(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three commands differ only in their settings: the same flags give the same backend."""
    from thinkloop.cli.backends import make_backend
    from thinkloop.cli.bench import _backends
    from thinkloop.cli.serve import backend_for

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    url = "http://127.0.0.1:9/v1"
    asked = make_backend(url, model)
    served = backend_for(
        argparse.Namespace(model=model, base_url=url, api_key_env=None, strategy="cot", max_request_seconds=30.0)
    )
    benched = _backends(_bench_args([model], [url]), dataset=None)
    assert [type(b) for b in (asked, served, *benched)] == [OpenAIBackend] * 3
    assert {(b.name, b.base_url.rstrip("/")) for b in (asked, served, *benched)} == {(model, url)}


def test_bench_pairs_urls_with_the_served_models_only(tmp_path: Path) -> None:
    """A grid may mix a local file with served models: the URLs go, in order, to the served ones."""
    from thinkloop.cli.bench import _backends

    local = tmp_path / "local.gguf"
    local.write_bytes(b"GGUF")
    built = _backends(
        _bench_args(["a", str(local), "b"], ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]), dataset=None
    )
    assert [type(b).__name__ for b in built] == ["OpenAIBackend", "LlamaCppBackend", "OpenAIBackend"]
    assert [b.base_url.rstrip("/") for b in (built[0], built[2])] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    with pytest.raises(ConfigurationError, match="every --model here runs in-process"):
        _backends(_bench_args([str(local)], ["http://127.0.0.1:1/v1"]), dataset=None)
