"""Backends: the only place a model is called (and I/O happens).

::

    base.py       the Backend protocol, BaseBackend (its defaults), Capabilities, RetryPolicy
    openai.py     OpenAIBackend: the official SDK against the OpenAI API or any compatible server
    streaming.py  a streamed reply's chunks folded back into one reply (OpenAIBackend(stream=True))
    reasoning.py  open reasoning models' thinking: where servers put it, its tokens counted or estimated
    llamacpp.py   LlamaCppBackend: a GGUF model in this process (the embedded SmolLM2 by default)
    llamacpp_thinking.py  a thinking budget for it: think at most N tokens, then answer (budget forcing)
    server.py     managed_llama_server: llama.cpp's OpenAI-compatible server as a child process
    scripted.py   ScriptedBackend: deterministic replies, for tests of your own strategies
    replay.py     ReplayBackend: a recorded run's completions, served in the order they came
    plugin.py     plugin_backend: a backend another package adds through an entry point
    resolve.py    resolve_backend: a model name (and URL) to a backend, one set of rules for every command
    profiles.py   ModelProfile: what a model family accepts (o-series parameters, reasoning_effort)
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backend": "base",
        "BaseBackend": "base",
        "Capabilities": "base",
        "RetryPolicy": "base",
        "ModelProfile": "profiles",
        "OpenAIBackend": "openai",
        "LlamaCppBackend": "llamacpp",
        "ManagedLlamaServer": "server",
        "managed_llama_server": "server",
        "ScriptedBackend": "scripted",
        "RecordedCall": "replay",
        "ReplayBackend": "replay",
        "plugin_backend": "plugin",
        "resolve_backend": "resolve",
    },
)
