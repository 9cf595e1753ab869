"""What travels to a remote worker: a backend's recipe and a config without its live backend.

A live backend holds open connections (an HTTP client, a loaded model) that cannot be pickled, and a worker on
another machine needs its own anyway. So a worker gets a :class:`BackendSpec` (a factory and its arguments)
and builds its own backend from it; a config travels as a :class:`ConfigSpec` naming its backend by key.

``backend_spec`` derives the recipe of an :class:`~thinkloop.backends.openai.OpenAIBackend` from the live
object (model, server, limits, retries, timeout, key); any other backend that pickles (the simulated and
scripted backends) travels as a copy. An API key travels wrapped in :class:`Secret`, whose ``repr`` hides it,
so an error message or a log line about a spec never shows it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from thinkloop.backends.base import Backend
from thinkloop.bench.datasets import Dataset
from thinkloop.bench.runner import Config, backend_label
from thinkloop.exceptions import ConfigurationError
from thinkloop.strategies.base import Strategy


class Secret:
    """A string that never shows itself in ``repr`` or ``str`` (API keys in a spec)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[REDACTED]')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


def _copy_of(backend: Backend) -> Backend:
    return backend


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend where it runs: ``factory(*args, **kwargs)``, with :class:`Secret` values revealed
    only at that moment. Must pickle (with cloudpickle, as Ray sends it)."""

    factory: Callable[..., Backend]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Backend:
        kwargs = {k: v.reveal() if isinstance(v, Secret) else v for k, v in self.kwargs.items()}
        return self.factory(*self.args, **kwargs)

    @classmethod
    def copy_of(cls, backend: Backend) -> BackendSpec:
        """A backend that pickles as it is (no connections inside): each worker gets its own copy."""
        return cls(_copy_of, (backend,))


def _openai_spec(backend: Any) -> BackendSpec:
    from thinkloop.backends.openai import OpenAIBackend

    client = backend._client  # the SDK client holds the timeout and key the backend was given
    capabilities = backend.capabilities
    kwargs: dict[str, Any] = {
        "base_url": backend.base_url,
        # learnt per process when not given: each actor learns it again from its own first reply
        "honours_n": None if getattr(backend, "_learn_n", False) else capabilities.honours_n,
        "max_concurrency": capabilities.max_concurrency,
        "max_retries": capabilities.retry.max_retries,
        "timeout": client.timeout,
        "profile": backend.profile,
        "prompt_overhead_tokens": capabilities.prompt_overhead_tokens,
    }
    if client.api_key:
        kwargs["api_key"] = Secret(client.api_key)
    return BackendSpec(OpenAIBackend, (backend.name,), kwargs)


def backend_spec(backend: Backend) -> BackendSpec:
    """The recipe a remote worker builds ``backend`` from.

    Raises:
        ConfigurationError: the backend neither has a known recipe nor pickles (the embedded llama.cpp model);
            pass a :class:`BackendSpec` for it to the executor instead.
    """
    from thinkloop.backends.openai import OpenAIBackend

    if isinstance(backend, OpenAIBackend):
        return _openai_spec(backend)
    pickler: ModuleType
    try:
        from ray import cloudpickle as pickler  # what Ray sends objects with (functions and lambdas included)
    except ImportError:
        pickler = pickle
    try:
        pickler.dumps(backend)
    except (TypeError, AttributeError, pickle.PicklingError, ValueError) as exc:
        raise ConfigurationError(
            f"backend {backend.name!r} ({type(backend).__name__}) cannot be sent to remote workers ({exc}); "
            "give the executor a BackendSpec for it (backend_specs={label: BackendSpec(factory, args, kwargs)})"
        ) from exc
    return BackendSpec.copy_of(backend)


@dataclass(frozen=True)
class ConfigSpec:
    """A :class:`Config` with its backend named by key and its data set without problems (they travel one
    at a time with each item)."""

    spec: str
    strategy: Strategy
    backend: str
    dataset: Dataset
    budget_tokens: int | None
    explicit: frozenset[str]

    @classmethod
    def of(cls, config: Config, backend_key: str) -> ConfigSpec:
        dataset = replace(config.dataset, problems=())
        return cls(config.spec, config.strategy, backend_key, dataset, config.budget_tokens, config.explicit)

    def build(self, backends: Mapping[str, Backend]) -> Config:
        return Config(self.spec, self.strategy, backends[self.backend], self.dataset, self.budget_tokens, self.explicit)


def ship(
    configs: list[Config], overrides: Mapping[str, BackendSpec] | None = None
) -> tuple[list[ConfigSpec], dict[str, BackendSpec]]:
    """Every config as a :class:`ConfigSpec`, and one :class:`BackendSpec` per distinct backend (by key).

    ``overrides`` maps a backend's label (``model`` or ``model@server``) to the spec to use for it.
    """
    overrides = dict(overrides or {})
    keys: dict[int, str] = {}
    specs: dict[str, BackendSpec] = {}
    shipped = []
    for config in configs:
        backend = config.backend
        key = keys.get(id(backend))
        if key is None:
            key = keys[id(backend)] = f"backend-{len(keys)}"
            label = backend_label(backend)
            specs[key] = overrides[label] if label in overrides else backend_spec(backend)
        shipped.append(ConfigSpec.of(config, key))
    return shipped, specs
