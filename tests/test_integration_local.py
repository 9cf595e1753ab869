"""The real embedded model: SmolLM2-135M in-process, and behind a managed llama.cpp server through the openai SDK.

SmolLM2-135M is too weak to get arithmetic right, so these tests check plumbing (real text, real usage, exact
prompt counts, greedy decoding, seeds, cancellation, process lifetime), never accuracy.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import anyio
import pytest

from thinkloop import (
    BackendError,
    BackendUnavailable,
    ChainOfThought,
    LlamaCppBackend,
    ModelNotFound,
    OpenAIBackend,
    SelfConsistency,
    managed_llama_server,
)
from thinkloop.backends.server import ManagedLlamaServer
from thinkloop.types import ChatRequest, Message

QUESTION = "What is 12 + 30?"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def garbage_model(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + b"\x00not really a model\x00" * 64)
    return path


# --- in-process -------------------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.anyio
async def test_chain_of_thought_runs_on_smollm2_in_process(smollm2: LlamaCppBackend) -> None:
    result = await ChainOfThought(max_tokens=64, temperature=0).run(QUESTION, backend=smollm2)
    assert result.text is not None and result.text.strip()
    assert result.model == "SmolLM2-135M-Instruct"
    assert result.stop_reason == "completed"
    usage = result.usage
    assert (usage.calls, usage.calls_without_usage) == (1, 0)
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 64


@pytest.mark.integration
@pytest.mark.parametrize("system", [None, "You are a careful problem solver."])
@pytest.mark.anyio
async def test_the_prompt_count_is_the_exact_prompt_the_model_saw(smollm2: LlamaCppBackend, system: str | None) -> None:
    request = ChatRequest.of(QUESTION, system=system, max_tokens=1, temperature=0)
    counted = smollm2.count_prompt_tokens(request.messages)
    completion = await smollm2.complete(request)
    assert counted == completion.usage.prompt_tokens


@pytest.mark.integration
def test_the_count_includes_the_templates_default_system_prompt(smollm2: LlamaCppBackend) -> None:
    # SmolLM2's template adds "You are a helpful AI assistant named SmolLM..." when no system message is given.
    bare = smollm2.count_prompt_tokens((Message(role="user", content="hi"),))
    with_empty_system = smollm2.count_prompt_tokens(
        (Message(role="system", content=""), Message(role="user", content="hi"))
    )
    assert bare - with_empty_system >= 10


@pytest.mark.integration
@pytest.mark.anyio
async def test_temperature_zero_is_greedy_and_seeds_reproduce(smollm2: LlamaCppBackend) -> None:
    greedy = await smollm2.complete(ChatRequest.of("Name a fruit.", temperature=0, max_tokens=16, n=3))
    assert len(greedy.choices) == 3
    assert len({c.text for c in greedy.choices}) == 1

    hot = ChatRequest.of("Name a fruit.", temperature=1.5, max_tokens=24, n=3, seed=11)
    first = await smollm2.complete(hot)
    await smollm2.complete(ChatRequest.of("Something else entirely.", max_tokens=4))
    again = await smollm2.complete(hot)
    assert len({c.text for c in first.choices}) > 1  # each choice gets its own seed
    assert [c.text for c in again.choices] == [c.text for c in first.choices]
    assert first.usage.prompt_tokens == smollm2.count_prompt_tokens(hot.messages)  # the prompt billed once


@pytest.mark.integration
@pytest.mark.anyio
async def test_max_tokens_cuts_a_reply_with_finish_reason_length(smollm2: LlamaCppBackend) -> None:
    completion = await smollm2.complete(ChatRequest.of("Tell me a long story about a dragon.", max_tokens=4))
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 4


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_cancelled_generation_stops_and_frees_the_model(smollm2: LlamaCppBackend) -> None:
    with anyio.move_on_after(0.2) as scope:
        await smollm2.complete(ChatRequest.of("Write a very long essay about the sea.", max_tokens=2000))
    assert scope.cancelled_caught
    after = await smollm2.complete(ChatRequest.of("Say hi.", max_tokens=4, temperature=0))
    assert after.text.strip()


def test_a_missing_model_file_is_model_not_found_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(ModelNotFound, match=f"model file not found: {missing}"):
        LlamaCppBackend(missing)
    with pytest.raises(ModelNotFound, match=f"model file not found: {missing}"):
        managed_llama_server(missing)


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_corrupt_model_file_is_model_not_found_on_first_use(tmp_path: Path) -> None:
    path = garbage_model(tmp_path)
    backend = LlamaCppBackend(path)
    with pytest.raises(ModelNotFound, match=f"cannot load model {path}"):
        await backend.complete(ChatRequest.of("hi", max_tokens=1))


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_prompt_longer_than_the_context_is_a_backend_error() -> None:
    backend = LlamaCppBackend(n_ctx=64)
    request = ChatRequest.of("word " * 200, max_tokens=4)
    assert backend.count_prompt_tokens(request.messages) is None  # not loaded: never load on the event loop
    await backend.load()
    size = backend.count_prompt_tokens(request.messages)
    expected = f"SmolLM2-135M-Instruct: the prompt has {size} tokens; the context window holds 64"
    with pytest.raises(BackendError, match=re.escape(expected)):
        await backend.complete(request)
    backend.close()


# --- the managed llama.cpp server --------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio drives the server in the cancellation test
@pytest.mark.anyio
async def test_self_consistency_through_the_managed_server_with_the_openai_sdk() -> None:
    server = managed_llama_server()
    async with server as backend:
        assert isinstance(backend, OpenAIBackend)
        assert backend.capabilities.honours_n is False
        assert backend.capabilities.max_concurrency == 1
        pid, port = server.pid, server.port
        assert pid is not None and port is not None and alive(pid)
        result = await ChainOfThought(max_tokens=32, temperature=0).run(QUESTION, backend=backend)
        assert result.text is not None and result.text.strip()
        assert result.usage.calls == 1
        assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
        # The server ignores n: three samples are three requests, queued one at a time.
        voted = await SelfConsistency(n=3, max_tokens=8, temperature=0.8).run(QUESTION, backend=backend)
        assert voted.usage.calls == 3
        assert voted.usage.calls_without_usage == 0
    assert not alive(pid)
    assert refused(port)
    assert server.process is None and server.pid is None


@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_the_server_stops_when_the_body_raises() -> None:
    server = managed_llama_server()
    with pytest.raises(RuntimeError, match="boom"):
        async with server:
            pid = server.pid
            assert pid is not None and alive(pid)
            raise RuntimeError("boom")
    assert not alive(pid)


@pytest.mark.integration
@pytest.mark.anyio
async def test_the_server_stops_when_the_body_is_cancelled() -> None:
    server = managed_llama_server()
    pid = None
    with anyio.CancelScope() as scope:
        async with server as backend:
            pid = server.pid
            scope.cancel()
            await backend.complete(ChatRequest.of("never sent", max_tokens=4))
    assert scope.cancelled_caught
    assert pid is not None and not alive(pid)


@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_server_that_dies_while_starting_reports_its_output(tmp_path: Path) -> None:
    server = ManagedLlamaServer(garbage_model(tmp_path), startup_timeout=60)
    with pytest.raises(BackendUnavailable, match="exited with code") as error:
        async with server:
            pytest.fail("the body must not run")
    message = str(error.value)
    assert str(tmp_path / "corrupt.gguf") in message
    assert "its output ends with" in message and len(message.splitlines()) > 1
    assert server.process is None
