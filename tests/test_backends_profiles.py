"""Model-family knowledge in one module: the backend, the effort strategy, serve and OpenTelemetry all ask
:mod:`thinkloop.backends.profiles`, so they cannot disagree about a model."""

from __future__ import annotations

import pytest

from thinkloop.backends.openai import OpenAIBackend
from thinkloop.backends.profiles import CHAT_PROFILE, REASONING_PROFILE, ModelProfile, model_takes_effort, provider_of
from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.serve.upstream import Upstream
from thinkloop.strategies.effort import takes_reasoning_effort
from thinkloop.telemetry import guess_provider

URL = "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("model", "profile", "effort"),
    [
        ("o1", REASONING_PROFILE, True),
        ("o1-mini", REASONING_PROFILE, False),
        ("openai/o3-mini", REASONING_PROFILE, True),
        ("gpt-5", CHAT_PROFILE, True),
        ("gpt-4o", CHAT_PROFILE, False),
        ("omni-7b", CHAT_PROFILE, False),
    ],
)
def test_every_user_of_a_profile_reads_the_same_answer(model: str, profile: ModelProfile, effort: bool) -> None:
    backend = OpenAIBackend(model, base_url=URL)
    assert ModelProfile.for_model(model) is profile and backend.profile is profile
    assert model_takes_effort(model) is effort and takes_reasoning_effort(backend) is effort
    assert Upstream(backend).profile is profile
    assert profile.is_reasoning_model is (profile is REASONING_PROFILE)


def test_an_in_process_upstream_has_no_profile() -> None:
    assert Upstream(ScriptedBackend(["x"])).profile is None


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("SmolLM2-135M-Instruct", "llama_cpp"),
        ("qwen.gguf", "llama_cpp"),
        ("scripted", "thinkloop"),
        ("gpt-4o", "openai"),
        (None, "openai"),
    ],
)
def test_the_provider_of_a_model(model: str | None, provider: str) -> None:
    assert provider_of(model) == guess_provider(model) == provider
