"""200 clients at once against ``thinkloop serve``: every answer right, admission bounded, memory flat.

Past ``--max-concurrency`` a request gets 429 with ``Retry-After``; the official client retries it on its own,
so every one of the 200 questions is answered. Server memory is read from /proc: the trace store is bounded
(``--keep-traces``), so a second wave must not grow the process.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import openai
import pytest

from serve_support import ServeProcess
from thinkloop.testing import MockConfig, MockServerProcess

CLIENTS = 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # one loop is enough for a load test (the others run on both)


@pytest.fixture(scope="module")
def serve() -> Iterator[ServeProcess]:
    with (
        MockServerProcess(MockConfig(latency=0.05, p_right=1.0)) as mock,
        ServeProcess(
            "--base-url",
            mock.base_url,
            "--model",
            "mock",
            "--strategy",
            "sc:n=4",
            "--max-concurrency",
            "50",
            "--keep-traces",
            "32",
        ) as server,
    ):
        yield server


async def wave(url: str, clients: int = CLIENTS) -> tuple[list[str], int]:
    """Ask different sums all at once; return the answers in order and how many requests were retried."""
    answers = [""] * clients
    retried = 0

    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=20) as client:

        async def one(i: int) -> None:
            nonlocal retried
            raw = await client.chat.completions.with_raw_response.create(
                model="mock",
                messages=[{"role": "user", "content": f"What is {i} + 1000?"}],
            )
            retried += int(raw.retries_taken > 0)
            answers[i] = raw.parse().thinkloop["answer"]  # type: ignore[attr-defined]

        async with anyio.create_task_group() as group:
            for i in range(clients):
                group.start_soon(one, i)
    return answers, retried


@pytest.mark.anyio
async def test_200_clients_all_answered_with_bounded_memory(serve: ServeProcess) -> None:
    expected = [str(i + 1000) for i in range(CLIENTS)]
    answers, retried = await wave(serve.url)
    assert answers == expected
    assert retried > 0  # some went past the 50 runs in flight and were told to retry
    after_first = serve.status_kb("VmRSS")
    answers, _ = await wave(serve.url, CLIENTS // 2)
    assert answers == expected[: CLIENTS // 2]
    assert serve.status_kb("VmRSS") - after_first < 25_000, "memory grows with the number of requests served"
    assert serve.status_kb("VmHWM") < 300_000
