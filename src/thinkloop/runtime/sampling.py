"""Drawing several samples of one request as cheaply as the backend allows (``RunContext.sample``).

One request with ``n`` where the backend honours it; single requests where it does not, or for the choices a
server quietly left out; fewer full-length samples where the budget cannot hold them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from thinkloop.backends.base import request_tokens_upper_bound
from thinkloop.exceptions import BackendError, BudgetExhausted
from thinkloop.runtime.caller import Caller
from thinkloop.runtime.graph import NodeKind
from thinkloop.runtime.result import Candidate
from thinkloop.runtime.trace import redact
from thinkloop.types import ChatRequest


@dataclass
class Samples:
    """What a batch of samples brought back, including what it did not."""

    candidates: list[Candidate] = field(default_factory=list)
    requested: int = 0
    budget_hit: bool = False
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.candidates)


class Sampler:
    """Draws samples through a :class:`Caller` (its backend, budget and recorder)."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    async def sample(
        self,
        request: ChatRequest,
        k: int,
        *,
        parents: Sequence[int],
        kind: NodeKind = "generate",
        strategy: str | None = None,
        into: Samples | None = None,
    ) -> Samples:
        """Draw ``k`` samples of ``request`` as cheaply as the backend allows.

        One request with ``n=k`` where the backend honours ``n`` (a shared prompt, billed once); otherwise,
        or for the choices a server quietly left out, concurrent single requests. Never fewer than ``k``
        without saying so in :attr:`Samples.notes`. Where the budget cannot hold ``k`` replies of the full
        ``max_tokens``, fewer samples of full length are drawn (and the budget is named as the reason)
        rather than ``k`` samples cut short. ``into`` collects the samples as they arrive (a caller can then
        vote over a partial draw if the run is stopped).
        """
        result = into if into is not None else Samples(requested=k)
        before = result.received
        if k > 1 and self.caller.backend.capabilities.honours_n:
            want = self._samples_that_fit(request, k)
            if want < k:
                result.notes.append(
                    f"the budget holds {want} of {k} samples at max_tokens={request.max_tokens}; drew {want}"
                )
            errors, hit = len(result.errors), result.budget_hit
            result.budget_hit = False
            if want > 1:
                await self._sample_call(request.model_copy(update={"n": want}), result, parents, kind, strategy)
                got = result.received - before
                if got < want and not result.budget_hit and len(result.errors) == errors:
                    result.notes.append(
                        f"the backend returned {got} of {want} choices; topping up with {want - got} calls"
                    )
                    await self._sample_concurrently(request, want - got, result, parents, kind, strategy)
            else:
                await self._sample_concurrently(request, 1, result, parents, kind, strategy)
            result.budget_hit = hit or result.budget_hit or want < k
        else:
            await self._sample_concurrently(request, k, result, parents, kind, strategy)
        if result.received - before < k:
            result.notes.append(f"received {result.received - before} of {k} samples")
        return result

    def _samples_that_fit(self, request: ChatRequest, k: int) -> int:
        """How many choices of the full ``max_tokens`` one ``n``-request could be granted now (at most k)."""
        wanted = request.max_tokens
        if wanted is None:
            return k
        prompt = request_tokens_upper_bound(self.caller.backend, request)
        name = self.caller.backend.name
        ledger = self.caller.ledger
        if ledger.in_flight() or ledger.tokens_allowed(prompt_tokens=prompt, n=k, model=name) >= wanted:
            return k  # calls in flight may free room: call() waits for them rather than shrink
        fit = k
        while fit > 1 and ledger.tokens_allowed(prompt_tokens=prompt, n=fit, model=name) < wanted:
            fit -= 1
        return fit

    async def _sample_concurrently(
        self,
        request: ChatRequest,
        k: int,
        result: Samples,
        parents: Sequence[int],
        kind: NodeKind,
        strategy: str | None,
    ) -> None:
        single = request.model_copy(update={"n": 1}) if request.n != 1 else request
        if k == 1:
            await self._sample_call(single, result, parents, kind, strategy)
            return
        async with anyio.create_task_group() as group:
            for _ in range(k):
                group.start_soon(self._sample_call, single, result, parents, kind, strategy)

    async def _sample_call(
        self,
        request: ChatRequest,
        result: Samples,
        parents: Sequence[int],
        kind: NodeKind,
        strategy: str | None,
    ) -> None:
        try:
            node, completion = await self.caller.call(request, parents=parents, kind=kind, strategy=strategy)
        except BudgetExhausted:
            result.budget_hit = True
            return
        except BackendError as exc:
            result.errors.append(redact(str(exc)))
            return
        if len(completion.choices) == 1:
            candidate = self.caller.candidate(node, completion.choices[0])
            result.candidates.append(candidate)
            return
        for index, choice in enumerate(completion.choices):
            answer = self.caller.answer_of(choice)
            child = self.caller.recorder.record(
                kind,
                [node.id],
                strategy=strategy,
                text=choice.text,
                answer=answer,
                data={"choice": index, "finish_reason": choice.finish_reason},
            )
            result.candidates.append(self.caller.candidate(child, choice))
