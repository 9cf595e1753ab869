"""A managed llama.cpp server: ``python -m llama_cpp.server`` as a child process, for as long as a context.

::

    async with managed_llama_server() as backend:      # an OpenAIBackend pointed at the child
        result = await ChainOfThought().run("What is 12 + 30?", backend=backend)

The server listens on 127.0.0.1 and a free port; the context waits until ``/v1/models`` answers and stops
the process on exit, also when the body raises or is cancelled (the cleanup is shielded). It exists to run
the same model through the real ``openai`` SDK and a real HTTP server, as a remote backend would be.

llama-cpp-python's server (0.3.x) has no parallel slots: one global lock serves one request at a time and
it ignores ``n``. The backend says so (``max_concurrency=1``, ``honours_n=False``), so the engine queues
requests and tops up samples with single calls.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO

import anyio
import httpx2
from anyio.abc import Process

from thinkloop.backends.llamacpp import DEFAULT_MODEL_NAME, default_threads, resolve_model_path
from thinkloop.backends.openai import OpenAIBackend
from thinkloop.backends.profiles import ModelProfile
from thinkloop.exceptions import BackendUnavailable

SERVER_SLOTS = 1
"""Requests llama-cpp-python's server runs at once: its app serialises every request behind one lock."""

_STDERR_TAIL_LINES = 20


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ManagedLlamaServer:
    """The async context manager behind :func:`managed_llama_server`.

    While entered, ``pid``, ``base_url`` and ``backend`` describe the running server.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        model_name: str | None = None,
        ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout: float = 120.0,
        request_timeout: float = 600.0,
        host: str = "127.0.0.1",
        logprobs: bool = False,
    ) -> None:
        path = resolve_model_path(model_path)
        self.model_path = path
        self.model_name = model_name or (DEFAULT_MODEL_NAME if model_path is None else path.stem)
        self.ctx = ctx
        self.n_threads = n_threads or default_threads()
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.host = host
        self.logprobs = logprobs
        self.port: int | None = None
        self.process: Process | None = None
        self.backend: OpenAIBackend | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def base_url(self) -> str | None:
        return None if self.port is None else f"http://{self.host}:{self.port}/v1"

    def command(self, port: int) -> list[str]:
        """The server's command line: this interpreter, so it runs from the same environment."""
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model_name,
            "--host",
            self.host,
            "--port",
            str(port),
            "--n_ctx",
            str(self.ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--logits_all",
            str(self.logprobs),  # the server's default (True) keeps n_ctx x n_vocab logits
            "--verbose",
            "False",
        ]

    async def __aenter__(self) -> OpenAIBackend:
        if self.process is not None:
            raise RuntimeError("this managed server is already running")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop; a file never fills like a pipe
        try:
            await self._start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stop()
            raise
        assert self.backend is not None
        return self.backend

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._stop()

    async def _start(self) -> None:
        self.port = free_port(self.host)
        self.process = await anyio.open_process(
            self.command(self.port),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        await self._wait_until_ready()
        self.backend = OpenAIBackend(
            self.model_name,
            base_url=self.base_url,
            api_key="not-needed",
            honours_n=False,
            max_concurrency=SERVER_SLOTS,
            timeout=self.request_timeout,
            profile=ModelProfile(logprobs=self.logprobs),
        )

    async def _wait_until_ready(self) -> None:
        assert self.process is not None
        url = f"{self.base_url}/models"
        deadline = time.monotonic() + self.startup_timeout
        async with httpx2.AsyncClient(timeout=2.0) as client:
            while True:
                if self.process.returncode is not None:
                    raise BackendUnavailable(
                        f"the llama.cpp server for {self.model_path} exited with code "
                        f"{self.process.returncode} while starting; its output ends with:\n{self.log_tail()}"
                    )
                try:
                    response = await client.get(url)
                    if response.status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"the llama.cpp server at {self.base_url} did not answer within "
                        f"{self.startup_timeout:g} s; its output ends with:\n{self.log_tail()}"
                    )
                await anyio.sleep(0.1)

    def log_tail(self, lines: int = _STDERR_TAIL_LINES) -> str:
        """The last lines the server wrote (stdout and stderr), for error messages."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", errors="replace")
        self._log.seek(0, os.SEEK_END)
        return "\n".join(text.strip().splitlines()[-lines:])

    async def _stop(self) -> None:
        """Close the client, then SIGTERM; SIGKILL if the server has not exited after 5 s."""
        try:
            if self.backend is not None:
                await self.backend.aclose()
        finally:
            self.backend = None
            await self._stop_process()

    async def _stop_process(self) -> None:
        process = self.process
        if process is not None:
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.port = None


def managed_llama_server(
    model_path: str | os.PathLike[str] | None = None,
    *,
    model_name: str | None = None,
    ctx: int = 4096,
    n_threads: int | None = None,
    startup_timeout: float = 120.0,
    request_timeout: float = 600.0,
    host: str = "127.0.0.1",
    logprobs: bool = False,
) -> ManagedLlamaServer:
    """Run a GGUF model behind llama.cpp's OpenAI-compatible server for the length of an ``async with``.

    Args:
        model_path: the GGUF file; ``None`` is the embedded SmolLM2-135M-Instruct.
        model_name: the name the server answers to (and the backend's name in traces).
        ctx: the context window in tokens.
        n_threads: CPU threads for the server (default: half the logical cores, see ``default_threads``).
        startup_timeout: seconds to wait for ``/v1/models`` to answer.
        request_timeout: the SDK's timeout per request (CPU generation can be slow).
        host: the loopback address to listen on.
        logprobs: serve token logprobs (the server then keeps every position's logits: memory and time).

    Returns:
        A context manager whose ``async with`` yields an :class:`OpenAIBackend` pointed at the server.
    """
    return ManagedLlamaServer(
        model_path,
        model_name=model_name,
        ctx=ctx,
        n_threads=n_threads,
        startup_timeout=startup_timeout,
        request_timeout=request_timeout,
        host=host,
        logprobs=logprobs,
    )
