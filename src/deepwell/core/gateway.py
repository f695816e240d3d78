"""The generation gateway: the one door every generating route goes through.

**prepare** (render, tokenize, compile constraints: CPU work, run off the event loop)
→ **admit** (hold the worst-case cost, or 402) → **run** on the engine → **settle**,
exactly once, on every ending: finished, stopped, failed, abandoned by a client that
went away, or cut by a shutdown. A settled request is charged for the tokens the
engine reported, at the prices of the moment it was admitted.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from deepwell import __version__
from deepwell.billing.ledger import Charge
from deepwell.billing.prices import PriceBook, PriceQuote
from deepwell.core.completion import CompletionEvent, CompletionRequest, CompletionService
from deepwell.core.events import Event, Finished, Started
from deepwell.core.metering import Meter
from deepwell.core.service import GenerationService
from deepwell.core.types import GenerationRequest
from deepwell.errors import InsufficientBalance
from deepwell.models.registry import ResolvedModel
from deepwell.vocabulary import Caller

log = logging.getLogger(__name__)

E = TypeVar("E")

CLOSE_TIMEOUT_S = 10.0
"""How long a shutdown waits for requests still open to end and settle."""


class Wallet(Protocol):
    """Where admitted requests hold and settle their cost (``billing.Ledger``)."""

    async def hold(
        self, request_id: str, account_id: int, currency: str, amount: Decimal
    ) -> bool: ...

    async def settle(self, charge: Charge) -> bool: ...


@dataclass(frozen=True, slots=True)
class Job:
    """A prepared request, as the gateway admits it: ``max_tokens`` is its whole
    completion budget (reasoning included)."""

    model: ResolvedModel
    prompt_tokens: int
    max_tokens: int
    thinking: bool
    logprobs: bool = False


class Generation(Generic[E]):
    """The events of an admitted request, ``Started`` first and ``Finished`` last.

    Iterate it once. ``aclose`` ends the run (freeing its engine sequence) and settles
    the request; a request is settled exactly once, whether it ran to its end, failed,
    was closed early, or was never iterated at all.
    """

    def __init__(
        self, events: AsyncGenerator[E, None], settle: Callable[[], Awaitable[None]]
    ) -> None:
        self._events = events
        self._settle = settle

    def __aiter__(self) -> Generation[E]:
        return self

    async def __anext__(self) -> E:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            await self._settle()


@dataclass(slots=True)
class _Ticket:
    """One admitted request until it is settled."""

    started: Started
    caller: Caller
    job: Job
    quote: PriceQuote
    admitted_at: datetime
    meter: Meter
    clock: float = field(default_factory=time.monotonic)
    first_output: float | None = None
    finish: str | None = None
    failed: bool = False
    settled: bool = False

    def observe(self, event: object) -> None:
        if isinstance(event, Finished):
            self.finish = event.reason
        elif self.first_output is None:
            self.first_output = time.monotonic()

    def charge(self, currency: str, finished_at: datetime) -> Charge:
        usage = self.meter.usage()
        ttft = self.first_output
        return Charge(
            request_id=self.started.id,
            account_id=self.caller.account_id,
            key_id=self.caller.key_id,
            model=self.job.model.id,
            backing=self.job.model.backing,
            currency=currency,
            hit_tokens=usage.cache_hit_tokens,
            miss_tokens=usage.cache_miss_tokens,
            output_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            quote=self.quote,
            finish_reason=self.finish or ("error" if self.failed else "cancelled"),
            ttft_ms=None if ttft is None else _ms(ttft - self.clock),
            duration_ms=_ms(time.monotonic() - self.clock),
            started_at=self.admitted_at,
            finished_at=finished_at,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """Chat and FIM generations, admitted against the caller's balance and settled."""

    def __init__(
        self,
        chat: GenerationService,
        completion: CompletionService,
        wallet: Wallet,
        prices: PriceBook,
        *,
        currency: str,
        block_tokens: int,
        now: Callable[[], datetime] = _utcnow,
        close_timeout: float = CLOSE_TIMEOUT_S,
    ) -> None:
        self._chat = chat
        self._completion = completion
        self._wallet = wallet
        self._prices = prices
        self._currency = currency
        self._block = block_tokens
        self._now = now
        self._close_timeout = close_timeout
        self._unsettled: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._settling: set[asyncio.Task[None]] = set()

    async def chat(self, request: GenerationRequest, caller: Caller) -> Generation[Event]:
        """Prepare and admit a chat reply; its errors (400, 402) are raised here, before
        anything is sent."""
        prepared = await asyncio.to_thread(self._chat.prepare, request, caller)
        plan = prepared.plan.request
        job = Job(
            prepared.model,
            len(plan.prompt),
            plan.max_tokens,
            prepared.thinking,
            logprobs=plan.logprobs is not None,
        )
        return await self._open(job, caller, functools.partial(self._chat.run, prepared))

    async def complete(
        self, request: CompletionRequest, caller: Caller
    ) -> Generation[CompletionEvent]:
        """Prepare and admit a FIM completion, as ``chat`` does."""
        prepared = await asyncio.to_thread(self._completion.prepare, request, caller)
        engine_request = prepared.engine_request
        job = Job(
            prepared.model, len(engine_request.prompt), engine_request.max_tokens, thinking=False
        )
        return await self._open(job, caller, functools.partial(self._completion.run, prepared))

    async def close(self) -> None:
        """At shutdown: give requests still open a while to end (the server has cancelled
        them by then), and wait for their settlements."""
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d requests were still open at shutdown", len(self._unsettled))
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _open(
        self, job: Job, caller: Caller, run: Callable[[Meter], AsyncGenerator[E, None]]
    ) -> Generation[Started | E]:
        admitted_at = self._now()
        quote = self._prices.quote(job.model.id, admitted_at)
        started = _started(job, admitted_at)
        amount = quote.worst_case(prompt=job.prompt_tokens, max_output=job.max_tokens)
        if not await self._wallet.hold(started.id, caller.account_id, self._currency, amount):
            raise InsufficientBalance("Insufficient Balance")
        ticket = _Ticket(started, caller, job, quote, admitted_at, Meter(self._block))
        self._unsettled.add(started.id)
        self._idle.clear()
        settle = functools.partial(self._settle, ticket)
        return Generation(self._events(ticket, run), settle)

    async def _events(
        self, ticket: _Ticket, run: Callable[[Meter], AsyncGenerator[E, None]]
    ) -> AsyncGenerator[Started | E, None]:
        try:
            yield ticket.started
            async with aclosing(run(ticket.meter)) as events:
                async for event in events:
                    ticket.observe(event)
                    yield event
        except Exception:
            ticket.failed = True
            raise
        finally:
            await self._settle(ticket)

    async def _settle(self, ticket: _Ticket) -> None:
        """Settle ``ticket`` once. The write runs as a task of its own, so that a
        cancelled caller (a client gone, a shutdown) cannot cut it halfway."""
        if ticket.settled:
            return
        ticket.settled = True
        self._unsettled.discard(ticket.started.id)
        if not self._unsettled:
            self._idle.set()
        task = asyncio.ensure_future(self._record(ticket.charge(self._currency, self._now())))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def _record(self, charge: Charge) -> None:
        try:
            await self._wallet.settle(charge)
        except Exception:
            log.exception(
                "settling request %s failed; its hold is released at the next start",
                charge.request_id,
            )


def _started(job: Job, at: datetime) -> Started:
    """The first event of a generation: a fresh id (also the ledger's), the time, the
    public id to echo."""
    return Started(
        id=str(uuid.uuid4()),
        model=job.model.id,
        created=int(at.timestamp()),
        thinking=job.thinking,
        fingerprint=fingerprint(job.model.backing),
        logprobs=job.logprobs,
    )


def fingerprint(backing: str) -> str:
    digest = hashlib.sha256(f"{backing}/{__version__}".encode()).hexdigest()
    return f"fp_{digest[:10]}"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
