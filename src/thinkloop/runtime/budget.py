"""Hard budgets: tokens, model calls, wall-clock seconds and dollars.

The guarantee: what a run is billed never exceeds its budget, however many branches are in flight. It
holds because every call *reserves* its worst case before it is sent (prompt upper bound plus ``max_tokens``
for each of its ``n`` choices, the ``max_tokens`` clamped to what is left) and *settles* to the real usage
after. Reserving is synchronous (no ``await`` between the check and the update), so concurrent tasks on
one event loop cannot both take the last tokens.

Budgets nest: :meth:`BudgetLedger.child` carves a slice for a sub-strategy; a child's reservations also hold
in every ancestor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from thinkloop.exceptions import BudgetExhausted, ConfigurationError, describe_validation_error
from thinkloop.types import RunUsage, Usage, UsageTally


class Price(BaseModel):
    """Dollars per million tokens. Reasoning tokens are billed as output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)

    def cost(self, usage: Usage) -> float | None:
        if not usage.known:
            return None
        cached = usage.cached_prompt_tokens or 0
        cached_rate = self.input if self.cached_input is None else self.cached_input
        uncached = (usage.prompt_tokens or 0) - cached
        completion = usage.completion_tokens or 0
        return (uncached * self.input + cached * cached_rate + completion * self.output) / 1e6

    def worst_case(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


class Budget(BaseModel):
    """Limits for one run. ``None`` is "no limit" on that resource.

    Args:
        tokens: total billed tokens (prompt + completion; reasoning tokens are inside completion).
        calls: model calls (a request with ``n`` choices is one call).
        seconds: wall-clock seconds for the whole run.
        dollars: spend, which needs a :class:`Price` for every model the run calls.
        price: the price of the run's model (and of any model not in ``prices``).
        prices: prices by model name, for runs that call several models (a judge on another model).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Strict: ``tokens=True`` is a mistake, not a budget of one token.
    tokens: Annotated[int, Field(gt=0, strict=True)] | None = None
    calls: Annotated[int, Field(gt=0, strict=True)] | None = None
    seconds: Annotated[float, Field(gt=0), BeforeValidator(_no_bool)] | None = None
    dollars: Annotated[float, Field(gt=0), BeforeValidator(_no_bool)] | None = None
    price: Price | None = None
    prices: dict[str, Price] | None = None

    @model_validator(mode="after")
    def _dollars_need_a_price(self) -> Budget:
        if self.dollars is not None and self.price is None and not self.prices:
            raise ValueError(
                f"dollars={self.dollars} needs a price for the model: pass price=Price(input=..., output=...)"
            )
        return self

    @classmethod
    def make(cls, **limits: object) -> Budget:
        """Build a budget, raising :class:`ConfigurationError` that names the bad limit."""
        try:
            return cls(**limits)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ConfigurationError(f"invalid budget: {describe_validation_error(exc, unknown='limit')}") from exc


@dataclass(slots=True)
class Reservation:
    """A call's worst case, held until the call settles or is released."""

    tokens: int
    calls: int
    dollars: float
    max_tokens: int
    """The per-choice ``max_tokens`` the call must be sent with (clamped to what was left)."""
    price: Price | None = None
    settled: bool = False


@dataclass(slots=True)
class _Spent:
    tokens: int = 0
    calls: int = 0
    dollars: float = 0.0


@dataclass
class BudgetLedger:
    """The live account of a :class:`Budget`: what is reserved and what was billed."""

    budget: Budget
    parent: BudgetLedger | None = None
    started: float = field(default_factory=time.monotonic)
    billed: _Spent = field(default_factory=_Spent)
    reserved: _Spent = field(default_factory=_Spent)
    overrun_tokens: int = 0
    """Tokens billed beyond a reservation (a server ignoring ``max_tokens``); reported, never hidden."""
    tally: UsageTally = field(default_factory=UsageTally, init=False, repr=False, compare=False)
    """Every settled call's usage as the servers reported it, summed for this ledger's whole tree: children
    add to the root's (see :attr:`usage`)."""
    _cost_known: bool = field(default=False, init=False, repr=False, compare=False)
    """Whether some answered call had a price: until one has, the run's cost is unknown, not zero."""
    _chain: tuple[BudgetLedger, ...] = field(default=(), init=False, repr=False, compare=False)
    """This ledger and its ancestors, nearest first: every call walks it several times."""
    _priced: bool = field(default=False, init=False, repr=False, compare=False)
    """Whether some budget of the chain has a price: when none has, :meth:`price` need not walk it."""
    _changed: anyio.Event | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._chain = (self, *self.parent._chain) if self.parent is not None else (self,)
        self._priced = any(led.budget.price is not None or led.budget.prices for led in self._chain)
        if self.parent is not None:
            self.tally = self._chain[-1].tally

    # --- what the run spent -------------------------------------------------------------------------
    @property
    def usage(self) -> RunUsage:
        """The whole run's usage (every ledger of the tree: a sub-strategy's calls are the run's calls)."""
        return self.tally.total()

    @property
    def cost(self) -> float | None:
        """The whole run's cost in dollars, as billed (a call of unknown usage at its worst case); ``None``
        when no answered call had a price."""
        root = self._chain[-1]
        return root.billed.dollars if root._cost_known else None

    def child(self, budget: Budget) -> BudgetLedger:
        """A slice of this budget for a sub-strategy."""
        return BudgetLedger(budget=budget, parent=self)

    # --- what is left -------------------------------------------------------------------------------
    def _left(self) -> tuple[float, float, float, float]:
        """Calls, seconds, tokens and dollars left, in one walk of the chain (:meth:`reserve` is hot)."""
        calls = seconds = tokens = dollars = math.inf
        now = None
        for led in self._chain:
            budget, billed, reserved = led.budget, led.billed, led.reserved
            if budget.calls is not None and (left := budget.calls - billed.calls - reserved.calls) < calls:
                calls = left
            if budget.seconds is not None:
                now = time.monotonic() if now is None else now
                if (left_s := budget.seconds - (now - led.started)) < seconds:
                    seconds = left_s
            if budget.tokens is not None and (left := budget.tokens - billed.tokens - reserved.tokens) < tokens:
                tokens = left
            if budget.dollars is not None and (left_d := budget.dollars - billed.dollars - reserved.dollars) < dollars:
                dollars = left_d
        return calls, seconds, tokens, dollars

    def tokens_left(self) -> float:
        return self._left()[2]

    def calls_left(self) -> float:
        return self._left()[0]

    def seconds_left(self) -> float:
        return self._left()[1]

    def price(self, model: str | None = None) -> Price | None:
        """The price of ``model``: from the nearest budget's ``prices``, else its ``price``."""
        if not self._priced:
            return None
        for led in self._chain:
            if model is not None and led.budget.prices and model in led.budget.prices:
                return led.budget.prices[model]
        for led in self._chain:
            if led.budget.price is not None:
                return led.budget.price
        return None

    def in_flight(self) -> bool:
        """Whether any reservation in this budget (or an enclosing one) is still unsettled."""
        return any(led.reserved.calls > 0 for led in self._chain)

    def tokens_allowed(self, *, prompt_tokens: int, n: int = 1, model: str | None = None) -> float:
        """The largest per-choice ``max_tokens`` a call could be granted now."""
        _, _, tokens_left, dollars_left = self._left()
        room = tokens_left - prompt_tokens
        allowed = math.inf if room == math.inf else room // n
        if dollars_left != math.inf:
            price = self.price(model)
            if price is not None:
                allowed = min(allowed, _dollar_allowed(price, dollars_left, prompt_tokens, n))
        return allowed

    async def settled_change(self) -> None:
        """Wait until some reservation of the whole budget tree settles or is released."""
        root = self._chain[-1]
        if root._changed is None:
            root._changed = anyio.Event()
        await root._changed.wait()

    def _notify(self) -> None:
        root = self._chain[-1]
        if root._changed is not None:
            root._changed.set()
            root._changed = None

    def dollars_left(self) -> float:
        return self._left()[3]

    def exhausted(self) -> bool:
        """Whether some limit of this budget (or an enclosing one) has nothing left at all."""
        calls, seconds, tokens, dollars = self._left()
        return tokens < 1 or calls < 1 or seconds <= 0 or dollars <= 0

    spent = exhausted
    """Deprecated name of :meth:`exhausted` (``Result.spent`` is what was billed, a different thing)."""

    # --- reserve / settle -----------------------------------------------------------------------------
    def reserve(
        self,
        *,
        prompt_tokens: int,
        max_tokens: int | None,
        n: int = 1,
        min_tokens: int = 1,
        model: str | None = None,
    ) -> Reservation:
        """Hold the worst case of one call, or raise :class:`BudgetExhausted`.

        ``max_tokens`` (per choice; ``None`` means "as many as fit") is clamped so that
        ``prompt_tokens + n * max_tokens`` fits in the tokens (and dollars) left. A call whose clamped
        ``max_tokens`` would fall below ``min_tokens`` is refused.
        """
        reservation = self._reserve(prompt_tokens, max_tokens, n, min_tokens, model, patient=False)
        assert reservation is not None
        return reservation

    def reserve_or_wait(
        self,
        *,
        prompt_tokens: int,
        max_tokens: int | None,
        n: int = 1,
        min_tokens: int = 1,
        model: str | None = None,
    ) -> Reservation | None:
        """:meth:`reserve`, except that a call that would be shrunk (or refused) only because calls in flight
        hold their worst case gets ``None``: wait for them to settle (:meth:`settled_change`) and ask again,
        rather than shrink it for tokens they will likely not use. One walk of the chain, as :meth:`reserve`."""
        return self._reserve(prompt_tokens, max_tokens, n, min_tokens, model, patient=True)

    def _reserve(
        self,
        prompt_tokens: int,
        max_tokens: int | None,
        n: int,
        min_tokens: int,
        model: str | None,
        *,
        patient: bool,
    ) -> Reservation | None:
        calls_left, seconds_left, tokens_left, dollars_left = self._left()
        price = self.price(model)
        room = tokens_left - prompt_tokens
        token_allowed = math.inf if room == math.inf else room // n
        allowed = token_allowed
        if dollars_left != math.inf and price is not None:
            allowed = min(allowed, _dollar_allowed(price, dollars_left, prompt_tokens, n))
        if patient and max_tokens is not None and allowed < max_tokens and self.in_flight():
            return None
        if calls_left < 1:
            limit = self._limit("calls")
            raise BudgetExhausted(f"the call budget of {limit} calls is spent", resource="calls")
        if seconds_left <= 0:
            limit = self._limit("seconds")
            raise BudgetExhausted(f"the time budget of {limit} s is spent", resource="seconds")
        if dollars_left != math.inf and price is None:
            raise ConfigurationError(
                f"the budget has a dollar limit but no price for model {model!r}: add it to Budget(prices=...)"
            )
        wanted = math.inf if max_tokens is None else max_tokens
        granted = min(wanted, allowed)
        if granted == math.inf:
            raise ConfigurationError("a call needs max_tokens when the budget has no token limit")
        granted = int(granted)
        if granted < min_tokens:
            if token_allowed < min_tokens or price is None:
                raise BudgetExhausted(
                    f"the next call needs at least {prompt_tokens + n * min_tokens} tokens "
                    f"but {max(0, int(tokens_left))} are left of the tokens budget",
                    resource="tokens",
                )
            raise BudgetExhausted(
                f"the next call needs at least ${price.worst_case(prompt_tokens, n * min_tokens):.6g} "
                f"but ${max(0.0, dollars_left):.6g} are left of the dollar budget "
                f"of ${self._limit('dollars')}",
                resource="dollars",
            )
        dollars = price.worst_case(prompt_tokens, n * granted) if price is not None else 0.0
        reservation = Reservation(
            tokens=prompt_tokens + n * granted, calls=1, dollars=dollars, max_tokens=granted, price=price
        )
        for led in self._chain:
            led.reserved.tokens += reservation.tokens
            led.reserved.calls += 1
            led.reserved.dollars += dollars
        return reservation

    def settle(self, reservation: Reservation, usage: Usage | None) -> None:
        """Replace a reservation by what the sent call was really billed, and count its usage in the run's.

        ``usage=None`` (the call failed before the server billed anything) releases the reservation but
        still counts the call, as a failed one. Unknown usage (``Usage()``) keeps the whole reservation as
        billed: safe, never optimistic. A call never sent is given back with :meth:`release` instead.
        """
        if reservation.settled:
            return
        reservation.settled = True
        held, held_dollars = reservation.tokens, reservation.dollars
        if usage is None:
            tokens, dollars = 0, 0.0
        elif usage.prompt_tokens is not None and usage.completion_tokens is not None:  # usage.known
            tokens = usage.prompt_tokens + usage.completion_tokens
            price = reservation.price
            dollars = (price.cost(usage) or 0.0) if price is not None else 0.0
        else:
            tokens, dollars = held, held_dollars
        overrun = tokens - held if tokens > held else 0
        root = self._chain[-1]
        if usage is None:
            root.tally.add_failed()
        else:
            root.tally.add(usage)
            if reservation.price is not None:
                root._cost_known = True
        for led in self._chain:
            reserved, billed = led.reserved, led.billed
            reserved.tokens -= held
            reserved.calls -= 1
            reserved.dollars -= held_dollars
            billed.tokens += tokens
            billed.calls += 1
            billed.dollars += dollars
            if overrun:
                led.overrun_tokens += overrun
        self._notify()

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unbilled (the call was cancelled before it was sent)."""
        if reservation.settled:
            return
        reservation.settled = True
        for led in self._chain:
            led.reserved.tokens -= reservation.tokens
            led.reserved.calls -= 1
            led.reserved.dollars -= reservation.dollars
        self._notify()

    def _limit(self, name: str) -> object:
        for led in self._chain:
            value = getattr(led.budget, name)
            if value is not None:
                return value
        return None


def _dollar_allowed(price: Price, dollars_left: float, prompt_tokens: int, n: int) -> float:
    """The largest per-choice completion that ``dollars_left`` pays for after the prompt (-1: not the prompt)."""
    dollar_room = dollars_left * 1e6 - prompt_tokens * price.input
    if price.output > 0:
        return math.floor(dollar_room / (n * price.output))
    return -1 if dollar_room < 0 else math.inf
