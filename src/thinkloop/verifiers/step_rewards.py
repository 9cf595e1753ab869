"""Step rewards: score a partial solution step by step (a process reward model, PRM).

Reward-guided search (beam search, DVTS, particle filtering) grows solutions one step at a time and needs,
after each step, how promising the path so far is. :class:`StepReward` is that one interface:
``score_steps(question, steps, ctx, parent=)`` returns a reward in [0, 1] for every prefix (reward ``i``
judges ``steps[:i + 1]``). Three implementations:

- :class:`JudgeStepReward`: the model itself, prompted to rate the latest step (one call per new prefix,
  through the run's context: budgeted and in the trace);
- :class:`VerifierStepReward`: any :class:`~thinkloop.runtime.verdict.Verifier` run on each prefix;
- :class:`RewardModelServer`: a PRM served over HTTP by vLLM's pooling API (request shape below).

Each remembers the prefixes it has scored in a run, so a search asking again for a longer path pays only for
its new step. :func:`aggregate` turns the per-step rewards into one number (``last``, ``min``, ``prod``,
``mean``: search-and-learn uses ``last`` with Qwen2.5-Math-PRM).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import anyio

from thinkloop.exceptions import BackendError, ConfigurationError
from thinkloop.runtime.result import Candidate
from thinkloop.verifiers.extract import extract_answer

if TYPE_CHECKING:
    import httpx2

    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.verdict import Verifier

Aggregation = Literal["last", "min", "prod", "mean"]


@runtime_checkable
class StepReward(Protocol):
    """Anything that scores each prefix of a partial solution in [0, 1]."""

    async def score_steps(
        self, question: str, steps: Sequence[str], ctx: RunContext | None = None, *, parent: int | None = None
    ) -> list[float]: ...


def aggregate(scores: Sequence[float], how: Aggregation = "last") -> float:
    """One reward for a path from its per-step rewards."""
    if not scores:
        raise ValueError("no step rewards to aggregate")
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    return math.fsum(scores) / len(scores)


class _Memo:
    """Rewards of prefixes already scored, per question: a search re-asks for every path it extends."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, tuple[str, ...]], float] = {}

    def missing(self, question: str, steps: Sequence[str]) -> list[int]:
        return [i for i in range(len(steps)) if (question, tuple(steps[: i + 1])) not in self._known]

    def put(self, question: str, steps: Sequence[str], index: int, value: float) -> None:
        self._known[(question, tuple(steps[: index + 1]))] = min(1.0, max(0.0, value))

    def get(self, question: str, steps: Sequence[str]) -> list[float]:
        return [self._known[(question, tuple(steps[: i + 1]))] for i in range(len(steps))]


# --- a prompted judge ---------------------------------------------------------------------------------
STEP_JUDGE_SYSTEM = (
    "You check solutions one step at a time. Given a problem, the earlier steps and the latest step, judge "
    "only whether the latest step is correct and useful. Reply with 'SCORE: N' where N is 0 (wrong) to 10 "
    "(certainly right)."
)
_SCORE = re.compile(r"score\s*[:=]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


class JudgeStepReward:
    """The run's model (or ``backend``) rates each new step 0-10; a reply without a score is 0 (a judge
    that cannot follow the format is no evidence for the step)."""

    def __init__(self, *, max_tokens: int = 16, backend: Any | None = None) -> None:
        self.max_tokens = max_tokens
        self.backend = backend
        self._memo = _Memo()

    async def score_steps(
        self, question: str, steps: Sequence[str], ctx: RunContext | None = None, *, parent: int | None = None
    ) -> list[float]:
        if ctx is None:
            raise ConfigurationError("JudgeStepReward needs a run context (its calls are charged to the run)")

        async def one(index: int) -> None:
            earlier = "\n\n".join(steps[:index]) or "(none)"
            _, choice = await ctx.side_call(
                STEP_JUDGE_SYSTEM,
                f"Problem:\n{question}\n\nEarlier steps:\n{earlier}\n\nLatest step:\n{steps[index]}",
                parents=[parent] if parent is not None else [],
                kind="evaluate",
                strategy="step-reward",
                max_tokens=self.max_tokens,
                backend=self.backend,
            )
            match = _SCORE.search(choice.text)
            self._memo.put(question, steps, index, min(10.0, float(match.group(1))) / 10 if match else 0.0)

        async with anyio.create_task_group() as group:
            for index in self._memo.missing(question, steps):
                group.start_soon(one, index)
        return self._memo.get(question, steps)


# --- any verifier ------------------------------------------------------------------------------------
class VerifierStepReward:
    """A verifier's score of each prefix, read as a candidate whose answer is the latest step's (if any)."""

    def __init__(self, verifier: Verifier, *, delimiter: str = "\n\n") -> None:
        self.verifier = verifier
        self.delimiter = delimiter
        self._memo = _Memo()

    async def score_steps(
        self, question: str, steps: Sequence[str], ctx: RunContext | None = None, *, parent: int | None = None
    ) -> list[float]:
        async def one(index: int) -> None:
            text = self.delimiter.join(steps[: index + 1])
            candidate = Candidate(text=text, answer=extract_answer(steps[index]), node_id=parent)
            verdict = await self.verifier.verify(question, candidate, ctx)
            self._memo.put(question, steps, index, verdict.score)

        async with anyio.create_task_group() as group:
            for index in self._memo.missing(question, steps):
                group.start_soon(one, index)
        return self._memo.get(question, steps)


# --- a reward-model server -----------------------------------------------------------------------------
PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


class RewardModelServer:
    """A process reward model served by vLLM (``vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling``).

    The request, one per path (``POST {root}/pooling``, where ``root`` is ``base_url`` without a trailing
    ``/v1``: vLLM serves the pooling API beside ``/v1``, not under it)::

        {"model": MODEL,
         "messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": QUESTION},
                      {"role": "assistant", "content": "step 1<extra_0>step 2<extra_0>"}],
         ...extra}

    (``prompt="text"`` sends ``"input": "QUESTION\\n\\nstep 1<extra_0>step 2<extra_0>"`` instead, for a PRM
    without a chat template.) Every step ends with ``step_tag``; the STEP pooler returns one row per tag::

        {"data": [{"index": 0, "object": "pooling", "data": [[0.02, 0.98], [0.61, 0.39]]}], "usage": {...}}

    Step ``i``'s reward is ``row[i][positive_index]`` (Qwen2.5-Math-PRM: ``[bad, good]``, index 1); a row
    that is a bare number is the reward itself. A reply with another number of rows than steps, or a value
    outside [0, 1], is a :class:`~thinkloop.exceptions.BackendError` naming it, never a guess. Transport
    failures and 5xx are retryable ``BackendError``; the server's tokens are its own (not the run's budget),
    reported in each ``evaluate`` node's data.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        step_tag: str = "<extra_0>",
        positive_index: int = 1,
        prompt: Literal["messages", "text"] = "messages",
        system: str | None = PRM_SYSTEM,
        extra: dict[str, Any] | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        import httpx2

        root = base_url.rstrip("/")
        # vLLM serves /pooling at the server's root, beside /v1: an OpenAI-style base URL is read as its root
        self.url = root.removesuffix("/v1") + "/pooling"
        self.model = model
        self.step_tag = step_tag
        self.positive_index = positive_index
        self.prompt = prompt
        self.system = system
        self.extra = dict(extra or {})
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = http_client or httpx2.AsyncClient(timeout=timeout)
        self._memo = _Memo()
        self.calls = 0

    def __repr__(self) -> str:  # never shows the key
        return f"RewardModelServer(url={self.url!r}, model={self.model!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    def body(self, question: str, steps: Sequence[str]) -> dict[str, Any]:
        """The JSON sent for one path (see the class docstring)."""
        solution = "".join(f"{step}{self.step_tag}" for step in steps)
        body: dict[str, Any] = {"model": self.model}
        if self.prompt == "text":
            body["input"] = f"{question}\n\n{solution}"
        else:
            system = [{"role": "system", "content": self.system}] if self.system else []
            body["messages"] = [
                *system,
                {"role": "user", "content": question},
                {"role": "assistant", "content": solution},
            ]
        return body | self.extra

    def parse(self, reply: Any, steps: int) -> list[float]:
        """Step rewards out of a ``/pooling`` reply, or a ``BackendError`` saying what is wrong with it."""
        try:
            rows = reply["data"][0]["data"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.model}: the reward server's reply has no data[0].data", maybe_billed=True
            ) from None
        if not isinstance(rows, list) or len(rows) != steps:
            count = len(rows) if isinstance(rows, list) else "no"
            raise BackendError(
                f"{self.model}: the reward server scored {count} steps of {steps} (is step_tag "
                f"{self.step_tag!r} the model's step token?)",
                maybe_billed=True,
            )
        rewards = []
        for row in rows:
            value = row[self.positive_index] if isinstance(row, list) else row
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise BackendError(
                    f"{self.model}: the reward server returned {value!r}, not a probability", maybe_billed=True
                )
            rewards.append(float(value))
        return rewards

    async def _post(self, body: dict[str, Any]) -> tuple[Any, int | None]:
        import httpx2

        try:
            response = await self._client.post(self.url, json=body, headers=self._headers)
        except httpx2.TimeoutException as exc:
            raise BackendError(f"{self.model}: the reward server timed out", retryable=True, maybe_billed=True) from exc
        except httpx2.TransportError as exc:
            raise BackendError(
                f"{self.model}: cannot reach the reward server ({type(exc).__name__})", retryable=True
            ) from exc
        if response.status_code >= 400:
            raise BackendError(
                f"{self.model}: the reward server answered {response.status_code}: {response.text[:200]}",
                retryable=response.status_code >= 500 or response.status_code == 429,
                maybe_billed=response.status_code >= 500,
            )
        try:
            reply = response.json()
        except ValueError:
            raise BackendError(f"{self.model}: the reward server's reply is not JSON", maybe_billed=True) from None
        usage = (reply.get("usage") or {}).get("prompt_tokens") if isinstance(reply, dict) else None
        return reply, usage

    async def score_steps(
        self, question: str, steps: Sequence[str], ctx: RunContext | None = None, *, parent: int | None = None
    ) -> list[float]:
        if not steps:
            return []
        if self._memo.missing(question, steps):
            self.calls += 1
            reply, tokens = await self._post(self.body(question, steps))
            rewards = self.parse(reply, len(steps))
            for index, value in enumerate(rewards):
                self._memo.put(question, steps, index, value)
            if ctx is not None:
                ctx.record(
                    "evaluate",
                    [parent] if parent is not None else [],
                    strategy="step-reward",
                    score=rewards[-1],
                    data={"prm": self.model, "step_rewards": rewards, "prm_tokens": tokens},
                )
        return self._memo.get(question, steps)
