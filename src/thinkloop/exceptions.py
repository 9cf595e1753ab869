"""thinkloop's errors. Every error the library raises on purpose derives from :class:`ThinkloopError`.

::

    ThinkloopError
    ├── ConfigurationError          bad options, a bad budget, an unknown strategy (raised before any call)
    ├── BackendError                a model call failed after the SDK's own retries
    │   ├── BackendUnavailable      the server cannot be reached (connection refused, DNS, dead process)
    │   ├── ModelNotFound           the model file or model name does not exist
    │   └── RateLimited             429 after retries
    ├── BudgetExhausted             a call cannot fit in what is left of the budget (reserve refused)
    ├── SandboxUnavailable          the program verifier cannot isolate code and was not told to run unguarded
    ├── ExecutorError               a bench executor lost every worker (all Ray actors died)
    └── DatasetError                a malformed dataset line or a missing field (names file, line and field)

Lower-level errors (openai, llama_cpp, OS) are mapped once, at the backend, with ``raise ... from exc``.
"""

from __future__ import annotations


class ThinkloopError(Exception):
    """Root of every error thinkloop raises on purpose."""


class ConfigurationError(ThinkloopError, ValueError):
    """An option or a budget is invalid; raised before any model call is made."""


class BackendError(ThinkloopError):
    """A model call failed (after the SDK's own retries): an infrastructure failure, never a wrong answer."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached."""


class ModelNotFound(BackendError):
    """The model (a GGUF file or a model name) does not exist."""


class RateLimited(BackendError):
    """The server kept answering 429 after the SDK's retries."""


class BudgetExhausted(ThinkloopError):
    """A call was refused because it cannot fit in what is left of the budget."""

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message)
        self.resource = resource


class SandboxUnavailable(ThinkloopError):
    """The program verifier cannot isolate untrusted code on this machine."""


class DatasetError(ThinkloopError, ValueError):
    """A dataset line is malformed or lacks a field; the message names the file, the line and the field."""


class ExecutorError(ThinkloopError):
    """A benchmark executor cannot go on (every Ray actor died); the records written so far stay."""
