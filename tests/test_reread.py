"""RE2 (re-reading): an option of every strategy that writes its own prompt, the question stated twice."""

from __future__ import annotations

import pytest

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.exceptions import ConfigurationError
from thinkloop.strategies.registry import build_strategy

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "spec",
    [
        "cot:reread=true",
        "sc:n=2,reread=true",
        "bon:n=2,reread=true,scorer=judge",
        "effort:level=low,reread=true",
        "deepconf:n=2,reread=true,without_logprobs=vote",
    ],
)
async def test_reread_states_the_question_twice(spec: str) -> None:
    backend = ScriptedBackend(lambda request: "Answer: 5\nVERDICT: CORRECT\nSCORE: 1")
    await build_strategy(spec).run("What is 2 + 3?", backend=backend)
    asked = backend.requests[0].messages[-1].content
    assert asked == "What is 2 + 3?\n\nRead the question again: What is 2 + 3?"


async def test_reread_is_off_by_default_and_refused_where_the_strategy_writes_its_own_prompts() -> None:
    backend = ScriptedBackend(["Answer: 5"])
    await build_strategy("cot").run("What is 2 + 3?", backend=backend)
    assert backend.requests[0].messages[-1].content == "What is 2 + 3?"
    with pytest.raises(ConfigurationError, match="unknown option 'reread'"):
        build_strategy("tree:reread=true")
