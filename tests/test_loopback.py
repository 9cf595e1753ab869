"""Every server thinkloop starts (the mock servers, ``thinkloop serve``, the managed llama.cpp server) listens on
127.0.0.1 only unless told otherwise (issue 16's fault suite), read from the kernel's own table of listening
sockets (``/proc/net/tcp`` and ``tcp6``) for the server's process, not from its config."""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

import anyio
import pytest

from serve_support import ServeProcess
from thinkloop.testing.faults import FaultyServerProcess
from thinkloop.testing.mock_server import MockServerProcess, serve_mock

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")

_LISTEN = "0A"


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    if len(host) == 8:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(host, 16)))
    else:
        words = struct.pack("<IIII", *(int(host[i : i + 8], 16) for i in range(0, 32, 8)))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return ip, int(port, 16)


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN and fields[9] in inodes:
                found.add(_address(fields[1]))
    return found


def test_the_parser_reads_a_wildcard_listener_as_one() -> None:
    """The check can fail: a socket bound to every interface is reported as 0.0.0.0."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert ("0.0.0.0", port) in listening(os.getpid())


@pytest.mark.parametrize("server_class", [MockServerProcess, FaultyServerProcess])
def test_the_mock_server_process_listens_on_loopback_only(server_class: type[MockServerProcess]) -> None:
    with server_class() as server:
        assert server._process is not None
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        assert listening(server._process.pid) == {("127.0.0.1", port)}


@pytest.mark.anyio
async def test_the_in_process_mock_server_listens_on_loopback_only() -> None:
    async with serve_mock() as server:
        assert ("127.0.0.1", server.port) in listening(os.getpid())
        assert not any(port == server.port and ip != "127.0.0.1" for ip, port in listening(os.getpid()))
        await anyio.sleep(0)


def test_thinkloop_serve_listens_on_loopback_only() -> None:
    with MockServerProcess() as upstream, ServeProcess("--base-url", upstream.base_url, "--model", "mock") as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        assert listening(server.pid) == {("127.0.0.1", port)}


@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # one event loop is enough to start a llama.cpp server
@pytest.mark.anyio
async def test_the_managed_llama_server_listens_on_loopback_only(anyio_backend: str) -> None:
    from thinkloop.backends.server import managed_llama_server

    server = managed_llama_server(ctx=512, n_threads=1)
    async with server:
        assert server.pid is not None and server.port is not None
        assert listening(server.pid) == {("127.0.0.1", server.port)}
