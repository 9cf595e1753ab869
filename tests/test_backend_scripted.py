"""ScriptedBackend: the test double users get with the library."""

from __future__ import annotations

import re

import anyio
import pytest

from thinkloop import Backend, Capabilities, Choice, Completion, Engine, ScriptedBackend, Strategy, Usage
from thinkloop.runtime.context import RunContext, Samples
from thinkloop.runtime.result import Outcome
from thinkloop.types import ChatRequest

pytestmark = pytest.mark.anyio


class Sample(Strategy):
    """Draws k samples of one request through the run context and keeps what came back."""

    name = "sample"

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.samples: Samples | None = None

    async def solve(self, ctx: RunContext, question: str, *, parent: int) -> Outcome:
        self.samples = await ctx.sample(self.request(question), self.k, parents=[parent], strategy=self.name)
        return Outcome(
            candidate=self.samples.candidates[0] if self.samples.candidates else None, stop_reason="completed"
        )


async def test_list_replies_are_served_in_order_then_run_out() -> None:
    backend = ScriptedBackend(["one", "two"])
    first = await backend.complete(ChatRequest.of("a"))
    second = await backend.complete(ChatRequest.of("b"))
    assert (first.text, second.text) == ("one", "two")
    with pytest.raises(IndexError, match=re.escape("ScriptedBackend ran out of replies after 3 requests")):
        await backend.complete(ChatRequest.of("c"))
    assert [r.messages[-1].content for r in backend.requests] == ["a", "b", "c"]


async def test_sync_and_async_functions_see_the_request() -> None:
    def echo(request: ChatRequest) -> str:
        return request.messages[-1].content.upper()

    async def echo_later(request: ChatRequest) -> str:
        await anyio.sleep(0)
        return request.messages[-1].content[::-1]

    assert (await ScriptedBackend(echo).complete(ChatRequest.of("hi"))).text == "HI"
    assert (await ScriptedBackend(echo_later).complete(ChatRequest.of("abc"))).text == "cba"


async def test_n_is_honoured_by_calling_the_function_n_times() -> None:
    counter = iter(range(100))
    backend = ScriptedBackend(lambda request: f"reply {next(counter)}")
    completion = await backend.complete(ChatRequest.of("q", n=3))
    assert [c.text for c in completion.choices] == ["reply 0", "reply 1", "reply 2"]
    assert completion.usage.completion_tokens == 6  # two words per reply


async def test_a_backend_that_ignores_n_returns_one_choice() -> None:
    backend = ScriptedBackend(lambda request: "x", capabilities=Capabilities(honours_n=False))
    completion = await backend.complete(ChatRequest.of("q", n=4))
    assert len(completion.choices) == 1


async def test_whole_completions_and_choices_pass_through() -> None:
    scripted = Completion(choices=(Choice(text="kept", finish_reason="stop"),), usage=Usage(prompt_tokens=7))
    backend = ScriptedBackend([scripted, Choice(text="", finish_reason="length")])
    assert await backend.complete(ChatRequest.of("q")) is scripted
    truncated = await backend.complete(ChatRequest.of("q"))
    assert truncated.choices[0].truncated_empty


async def test_token_counts_and_max_tokens_truncation() -> None:
    backend = ScriptedBackend(["one two three four five"])
    request = ChatRequest.of("x" * 40, max_tokens=3)
    completion = await backend.complete(request)
    assert completion.choices[0] == Choice(text="one two three", finish_reason="length")
    assert completion.usage == Usage(prompt_tokens=40 // 4 + 1, completion_tokens=3)
    assert completion.model == "scripted"


async def test_it_satisfies_the_backend_protocol() -> None:
    assert isinstance(ScriptedBackend(["x"]), Backend)


async def test_latency_lets_requests_overlap_unless_the_capabilities_forbid_it() -> None:
    free = ScriptedBackend(lambda r: "Answer: 1", latency=0.02, capabilities=Capabilities(honours_n=False))
    strategy = Sample(4)
    await Engine(free).run(strategy, "q")
    assert strategy.samples is not None and strategy.samples.received == 4
    assert free.max_in_flight == 4

    serial = ScriptedBackend(
        lambda r: "Answer: 1", latency=0.02, capabilities=Capabilities(honours_n=False, max_concurrency=1)
    )
    await Engine(serial).run(Sample(4), "q")
    assert len(serial.requests) == 4
    assert serial.max_in_flight == 1


async def test_a_cancelled_call_leaves_nothing_in_flight() -> None:
    backend = ScriptedBackend(["late"], latency=10)
    with anyio.move_on_after(0.01) as scope:
        await backend.complete(ChatRequest.of("q"))
    assert scope.cancelled_caught
    assert backend.in_flight == 0
    assert len(backend.requests) == 1
