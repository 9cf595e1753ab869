"""Test utilities that ship with thinkloop: a mock OpenAI-compatible server with a known answer distribution.

Not imported by ``import thinkloop``. The names load on first use, so that
``python -m thinkloop.testing.mock_server`` runs the module once, as ``__main__``.

::

    mock_server.py   MockServer (in-process), MockServerProcess (its own process), serve_mock, the HTTP side
    mock_model.py    MockConfig, MockModel, MockStats: what the mock answers, with a known distribution
    faults.py        FaultyMockServer: the mock with a 429 storm and counts per question
    mock_reasoner.py ReasoningMockServer / ReasoningServerProcess / serve_reasoner: thinking in each server
                     shape (reasoning_content, reasoning, <think> tags), streamed or not
    browser.py       the system Chromium through Playwright, with no network
    faults.py        FaultyMockServer / FaultyServerProcess / serve_faulty: a 429 storm, requests per question
"""

from thinkloop.types import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        name: "mock_server"
        for name in (
            "MockConfig",
            "MockModel",
            "MockServer",
            "MockServerProcess",
            "MockStats",
            "question_key",
            "right_answer",
            "serve_mock",
            "vote_right_probability",
        )
    },
)
