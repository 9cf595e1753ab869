"""Shared test settings: no real network, asyncio and trio, one loaded copy of the embedded model.

Unit tests never reach a real model API. The guard works on two levels: the environment points the OpenAI
SDK at a refused local port with a dummy key (so a backend built without an injected transport fails fast
instead of calling api.openai.com), and sockets refuse to connect anywhere but loopback. Integration tests
talk to a llama.cpp server on 127.0.0.1, which the guard allows. ``THINKLOOP_ALLOW_NETWORK=1`` lifts the
socket guard for someone deliberately running against a remote server.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

ALLOW_NETWORK = os.environ.get("THINKLOOP_ALLOW_NETWORK") == "1"
DUMMY_API_KEY = "sk-thinkloop-test-dummy-0000000000"
REFUSED_BASE_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connections are refused

# The CPU is shared (2 cores, other jobs): Hypothesis' per-example deadline would only measure that.
settings.register_profile("thinkloop", deadline=None)
settings.load_profile("thinkloop")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on asyncio and on trio (structured concurrency on both)."""
    return request.param


@pytest.fixture(autouse=True)
def _no_real_model_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", DUMMY_API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", REFUSED_BASE_URL)
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    monkeypatch.delenv("OPENAI_PROJECT_ID", raising=False)


def _loopback(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths, abstract sockets
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if ALLOW_NETWORK:
        yield
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _loopback(address):
            raise ConnectionRefusedError(f"tests must not reach the network (connect to {address!r})")
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        if not _loopback(address):
            raise ConnectionRefusedError(f"tests must not reach the network (connect to {address!r})")
        return connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield


@pytest.fixture(scope="session")
def smollm2() -> Iterator[Any]:
    """The embedded SmolLM2-135M, loaded once for every integration test in the session."""
    from thinkloop.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend()
    yield backend
    backend.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """llama_cpp opens two /dev/null files at import and never closes them; with warnings as errors their
    ResourceWarning at interpreter exit prints "Exception ignored" noise after the summary."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None and not handle.closed:
            handle.close()
