"""Test utilities that ship with thinkloop: a mock OpenAI-compatible server with a known answer distribution.

Not imported by ``import thinkloop``. The names below load on first use, so that
``python -m thinkloop.testing.mock_server`` runs the module once, as ``__main__``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinkloop.testing.mock_server import (
        MockConfig,
        MockModel,
        MockServer,
        MockServerProcess,
        MockStats,
        question_key,
        right_answer,
        serve_mock,
        vote_right_probability,
    )

__all__ = [
    "MockConfig",
    "MockModel",
    "MockServer",
    "MockServerProcess",
    "MockStats",
    "question_key",
    "right_answer",
    "serve_mock",
    "vote_right_probability",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("thinkloop.testing.mock_server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
