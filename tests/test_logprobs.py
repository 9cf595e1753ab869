"""Token log-probabilities with their top alternatives: asked of and read from the OpenAI API (the real
SDK over a mock transport), read from llama.cpp's completion shape, and DeepConf run over the OpenAI
backend end to end."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx2
import pytest

from thinkloop import OpenAIBackend
from thinkloop.backends.llamacpp import _token_logprobs
from thinkloop.strategies.deepconf import DeepConf
from thinkloop.types import ChatRequest, TokenLogprob

pytestmark = pytest.mark.anyio


def entry(token: str, p: float, alternatives: int) -> dict[str, Any]:
    """A ``logprobs.content`` entry: the token at probability ``p``, others sharing the rest."""
    rest = (1 - p) / max(alternatives - 1, 1)
    top = [{"token": token, "logprob": math.log(p), "bytes": None}] + [
        {"token": f"alt{j}", "logprob": math.log(rest), "bytes": None} for j in range(alternatives - 1)
    ]
    return {"token": token, "logprob": math.log(p), "bytes": None, "top_logprobs": top if alternatives else []}


def body(texts: list[tuple[str, float]], alternatives: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": i,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": [entry(w, p, alternatives) for w in text.split()], "refusal": None},
            }
            for i, (text, p) in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": sum(len(t.split()) for t, _ in texts), "total_tokens": 0},
    }


def backend(respond: Any, sent: list[dict[str, Any]]) -> OpenAIBackend:
    def handler(request: httpx2.Request) -> httpx2.Response:
        payload = json.loads(request.content)
        sent.append(payload)
        return httpx2.Response(200, json=respond(payload))

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return OpenAIBackend("m", base_url="https://api.example/v1", http_client=client, max_retries=0)


async def test_top_logprobs_are_asked_and_read() -> None:
    sent: list[dict[str, Any]] = []
    completion = await backend(lambda _: body([("Hi there", 0.9)], 3), sent).complete(
        ChatRequest.of("hello", logprobs=True, top_logprobs=3)
    )
    assert sent[0]["logprobs"] is True and sent[0]["top_logprobs"] == 3
    first = completion.choices[0].logprobs[0]
    assert first.token == "Hi" and first.logprob == pytest.approx(math.log(0.9))
    assert [t.token for t in first.top_logprobs] == ["Hi", "alt0", "alt1"]
    assert first.top_logprobs[1].logprob == pytest.approx(math.log(0.05))


async def test_no_top_logprobs_asked_means_none_read() -> None:
    sent: list[dict[str, Any]] = []
    completion = await backend(lambda _: body([("Hi", 0.9)], 0), sent).complete(ChatRequest.of("x", logprobs=True))
    assert sent[0]["top_logprobs"] == 0
    assert completion.choices[0].logprobs == (TokenLogprob(token="Hi", logprob=math.log(0.9)),)


def test_llamacpp_completion_logprobs_keep_the_top_alternatives() -> None:
    shape = {
        "tokens": [" 4", "2"],
        "token_logprobs": [-0.1, -0.5],
        "top_logprobs": [{" 4": -0.1, " 5": -2.5, " 3": -3.0}, {"2": -0.5, "1": -1.0}],
    }
    records = _token_logprobs(shape, 2)
    assert [r.token for r in records] == [" 4", "2"]
    assert [(t.token, t.logprob) for t in records[0].top_logprobs] == [(" 4", -0.1), (" 5", -2.5)]
    assert _token_logprobs(shape, None)[0].top_logprobs is None


async def test_deepconf_over_an_openai_compatible_server() -> None:
    """Five samples in one n-request: three unsure 41s, two sure 42s. The confidences decide."""
    replies = [("maybe 41 Answer: 41", 0.4)] * 3 + [("surely 42 Answer: 42", 0.97)] * 2
    sent: list[dict[str, Any]] = []
    model = backend(lambda payload: body(replies[: payload.get("n", 1)], 4), sent)
    result = await DeepConf(n=5, keep_percent=60).run("q", backend=model)
    assert sent[0]["n"] == 5 and sent[0]["top_logprobs"] == 5
    assert result.answer == "42" and result.votes == {"42": 2, "41": 1}


@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_embedded_model_continues_a_reply_with_top_logprobs_and_deepconf_runs_on_it() -> None:
    from thinkloop.backends.llamacpp import LlamaCppBackend
    from thinkloop.types import Message

    backend = LlamaCppBackend(logprobs=True, n_ctx=1024)
    try:
        request = ChatRequest(
            messages=(
                Message(role="user", content="Count from 1 to 10."),
                Message(role="assistant", content="1, 2, 3, 4,"),
            ),
            max_tokens=6,
            temperature=0,
            logprobs=True,
            top_logprobs=3,
        )
        choice = (await backend.complete(request)).choices[0]
        assert "5" in choice.text and "1, 2" not in choice.text  # it wrote on, not from the start
        assert choice.logprobs and all(len(t.top_logprobs or ()) == 3 for t in choice.logprobs)
        result = await DeepConf(
            n=4,
            mode="online",
            warmup=2,
            parallel=1,
            chunk_tokens=8,
            window=4,
            max_tokens=24,
            temperature=0.8,
        ).run("What is 2 + 3?", backend=backend)
        assert result.stop_reason in ("completed", "converged")
        assert result.data["threshold"] is not None and result.usage.completion_tokens > 0
    finally:
        backend.close()


@pytest.mark.parametrize(("strategy", "keeps"), [("deepconf", True), ("deepconf-online:n=4", True), ("cot", False)])
def test_serve_keeps_the_embedded_models_logprobs_only_for_a_strategy_that_reads_them(
    strategy: str, keeps: bool
) -> None:
    import argparse

    from thinkloop.cli.serve import backend_for

    backend = backend_for(
        argparse.Namespace(model=None, base_url=None, api_key_env=None, strategy=strategy, max_request_seconds=None)
    )
    assert backend.capabilities.logprobs is keeps  # the model is not loaded: built, never run


def test_bench_refuses_a_logprob_strategy_on_a_model_without_them_before_any_call(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from thinkloop.cli import main

    out = tmp_path / "results.jsonl"
    code = main(
        ["bench", "run", "svamp", "--limit", "2", "--simulated", "0.6", "--strategy", "deepconf:n=4", "--out", str(out)]
    )
    assert code != 0
    assert "deepconf:n=4 reads token log-probabilities and simulated(p=0.6) gives none" in capsys.readouterr().err
    assert not out.exists()
