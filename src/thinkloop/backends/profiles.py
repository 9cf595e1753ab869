"""What each model family accepts, known in one place: which models are native reasoning models (no system
role, ``max_completion_tokens``, no sampling parameters, no log-probabilities), which take ``reasoning_effort``
themselves, and which provider a model name belongs to.

The OpenAI backend shapes its requests by :meth:`ModelProfile.for_model`; the effort strategy and ``serve``
ask :func:`model_takes_effort`; OpenTelemetry names a run's provider by :func:`provider_of`. A new model family
is one entry here, not an edit in each of them. (Where servers put an open model's thinking is
:mod:`thinkloop.backends.reasoning`'s: that is a server's shape, not a model family's.)
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_O_SERIES = re.compile(r"^(?:openai/)?o\d(?:$|[-.])")
"""OpenAI's native reasoning models: o1, o1-mini, o3-mini, o4-mini ... (with a provider prefix or a date)."""
_TAKES_EFFORT = re.compile(r"^(?:openai/)?(?:o[1-9](?:$|[-.])|gpt-5(?:$|[-.]))")
"""Models that take ``reasoning_effort`` themselves: the o-series from o1 on, and gpt-5 ..."""
_NO_EFFORT = re.compile(r"^(?:openai/)?o1-(?:mini|preview)(?:$|-)")
"""... except o1-mini and o1-preview, which reject it."""


class ModelProfile(BaseModel):
    """How a model family differs from a plain chat model."""

    model_config = ConfigDict(frozen=True)

    system_role: bool = True
    """False: fold the system message into the first user message (o1, o1-mini)."""
    max_tokens_param: str = "max_tokens"
    sampling_params: bool = True
    """False: the model rejects temperature and top_p (native reasoning models)."""
    logprobs: bool = True

    @property
    def is_reasoning_model(self) -> bool:
        """A native reasoning model (o1, o3 ...): it thinks on the provider's side and takes no sampling
        parameters."""
        return not self.sampling_params

    @classmethod
    def for_model(cls, model: str) -> ModelProfile:
        """The profile of ``model``'s family (the chat profile for any name not known here)."""
        if _O_SERIES.match(model):
            return REASONING_PROFILE
        return CHAT_PROFILE


CHAT_PROFILE = ModelProfile()
REASONING_PROFILE = ModelProfile(
    system_role=False, max_tokens_param="max_completion_tokens", sampling_params=False, logprobs=False
)


def model_takes_effort(model: str) -> bool:
    """Whether a model accepts ``reasoning_effort`` itself (so a level is passed through unchanged)."""
    return bool(_TAKES_EFFORT.match(model)) and not _NO_EFFORT.match(model)


def provider_of(model: str | None) -> str:
    """``gen_ai.provider.name`` for a model: ``llama_cpp`` for the embedded model or a GGUF file (in-process),
    ``thinkloop`` for the test and replay doubles, ``openai`` for everything reached through the ``openai`` SDK
    (OpenAI itself or any OpenAI-compatible server)."""
    name = (model or "").lower()
    if name.startswith("smollm") or name.endswith(".gguf"):
        return "llama_cpp"
    if name in {"scripted", "replay"}:
        return "thinkloop"
    return "openai"
