"""``thinkloop serve`` with no backend flags answers on the embedded SmolLM2-135M (plumbing, not accuracy)."""

from __future__ import annotations

import openai
import pytest

from serve_support import ServeProcess


@pytest.mark.integration
def test_serve_with_no_flags_answers_on_the_embedded_model() -> None:
    with ServeProcess() as server, openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client:
        assert server.url.startswith("http://127.0.0.1:")
        (model,) = [m.id for m in client.models.list() if m.id != "thinkloop"]
        assert model == "SmolLM2-135M-Instruct"
        reply = client.chat.completions.create(
            model="thinkloop",
            messages=[{"role": "user", "content": "What is 12 + 30?"}],
            max_tokens=24,
        )
    message = reply.choices[0].message
    assert message.content.strip()
    assert message.reasoning_content.startswith("Strategy cot on SmolLM2-135M-Instruct")  # type: ignore[attr-defined]
    assert reply.thinkloop["calls"] == 1  # type: ignore[attr-defined]
    assert 0 < reply.usage.completion_tokens <= 24 and reply.usage.prompt_tokens > 0
