"""The generation gateway: the one door every generating route goes through.

**prepare** (render, tokenize, compile constraints: CPU work, run off the event loop)
→ **admit** (the account's concurrency, or 429; a place in the engine's queue, or 503;
a hold of the worst-case cost, or 402) → **wait** for the engine (keep-alives) → **run**
→ **settle**, exactly once, on every ending: finished, stopped, failed, abandoned by a
client that went away, timed out in the queue, or cut by a shutdown. A settled request
is charged for the tokens the engine reported, at the prices of the moment it was
admitted, and gives back its places.
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
from deepwell.billing.ledger import Charge, Held
from deepwell.billing.prices import PriceBook, PriceQuote
from deepwell.core.admission import Admission, Entry
from deepwell.core.completion import CompletionEvent, CompletionRequest, CompletionService
from deepwell.core.events import Event, Finished, KeepAlive, Started
from deepwell.core.metering import Meter
from deepwell.core.observer import NullObserver, Observer, Refusal, Trace
from deepwell.core.service import GenerationService
from deepwell.core.types import GenerationRequest
from deepwell.errors import DeepwellError, InsufficientBalance, Overloaded, RateLimited
from deepwell.limits.concurrency import Counter, backing_key
from deepwell.limits.queue import FairQueue, Place, QueueStats
from deepwell.models.registry import ResolvedModel
from deepwell.settings import QueueSettings
from deepwell.vocabulary import Caller

log = logging.getLogger(__name__)

E = TypeVar("E")

CLOSE_TIMEOUT_S = 10.0
"""How long a shutdown waits for requests still open to end and settle."""

INLINE_CHARS = 2048
"""A request with less text than this, and no tools or schema to compile, is prepared on
the event loop: rendering and tokenizing it takes less time than the hop to a worker
thread and back that it would wait for (about a millisecond on a loaded machine)."""


class Wallet(Protocol):
    """Where admitted requests hold and settle their cost (``billing.Ledger``)."""

    async def hold(
        self, request_id: str, account_id: int, currency: str, amount: Decimal
    ) -> Held | None: ...

    async def release(self, request_id: str) -> None: ...

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
    entry: Entry
    place: Place
    trace: Trace
    clock: float = field(default_factory=time.monotonic)
    first_output: float | None = None
    last_output: float | None = None
    finish: str | None = None
    failed: bool = False
    cut: bool = False
    settled: bool = False

    def observe(self, event: object, observer: Observer) -> None:
        if isinstance(event, Finished):
            self.finish = event.reason
            return
        now = time.monotonic()
        model = self.job.model.id
        if self.last_output is None:
            self.first_output = now
            observer.first_token(model, now - self.clock)
        else:
            observer.next_token(model, now - self.last_output)
        self.last_output = now

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
    """Chat and FIM generations: admitted against the caller's limits, the engine's
    queue and the caller's balance, run, and settled."""

    def __init__(
        self,
        chat: GenerationService,
        completion: CompletionService,
        wallet: Wallet,
        prices: PriceBook,
        admission: Admission,
        queues: dict[str, FairQueue],
        *,
        currency: str,
        block_tokens: int,
        queue: QueueSettings | None = None,
        observer: Observer | None = None,
        now: Callable[[], datetime] = _utcnow,
        close_timeout: float = CLOSE_TIMEOUT_S,
    ) -> None:
        self._chat = chat
        self._completion = completion
        self._wallet = wallet
        self._prices = prices
        self._admission = admission
        self._queues = queues
        self._currency = currency
        self._block = block_tokens
        self._queue = queue or QueueSettings()
        self._observer: Observer = observer or NullObserver()
        self._now = now
        self._close_timeout = close_timeout
        self._open_tickets: dict[str, _Ticket] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._settling: set[asyncio.Task[None]] = set()
        self._draining = False
        self._drain_timer: asyncio.TimerHandle | None = None

    async def chat(
        self, request: GenerationRequest, caller: Caller, trace: Trace | None = None
    ) -> Generation[Event | KeepAlive]:
        """Admit and prepare a chat reply; its errors (400, 402, 429, 503) are raised
        here, before anything is sent. The concurrency limit is checked first, so that a
        client over it costs no rendering or tokenizing."""
        model = self._chat.resolve(request.model)
        entry = await self._enter(caller, model, request.user_id, trace)
        try:
            prepare = functools.partial(self._chat.prepare, request, caller)
            prepared = await asyncio.to_thread(prepare) if _heavy(request) else prepare()
            plan = prepared.plan.request
            job = Job(
                prepared.model,
                len(plan.prompt),
                plan.max_tokens,
                prepared.thinking,
                logprobs=plan.logprobs is not None,
            )
            run = functools.partial(self._chat.run, prepared)
            return await self._open(job, caller, entry, run, trace)
        except BaseException:
            await self._admission.leave(entry)
            raise

    async def complete(
        self, request: CompletionRequest, caller: Caller, trace: Trace | None = None
    ) -> Generation[CompletionEvent | KeepAlive]:
        """Admit and prepare a FIM completion, as ``chat`` does."""
        model = self._completion.resolve(request.model)
        entry = await self._enter(caller, model, None, trace)
        try:
            prepare = functools.partial(self._completion.prepare, request, caller)
            heavy = len(request.prompt) + len(request.suffix) >= INLINE_CHARS
            prepared = await asyncio.to_thread(prepare) if heavy else prepare()
            engine_request = prepared.engine_request
            job = Job(
                prepared.model,
                len(engine_request.prompt),
                engine_request.max_tokens,
                thinking=False,
            )
            run = functools.partial(self._completion.run, prepared)
            return await self._open(job, caller, entry, run, trace)
        except BaseException:
            await self._admission.leave(entry)
            raise

    async def count_tokens(self, request: GenerationRequest, caller: Caller) -> int:
        """The prompt ``request`` would have, in tokens of its model (rendered with its
        template, off the event loop); nothing is admitted or run."""
        prepared = await asyncio.to_thread(self._chat.prepare, request, caller)
        return len(prepared.plan.request.prompt)

    def queues(self) -> dict[str, QueueStats]:
        """Each backing model's queue, as it stands."""
        return {name: queue.stats() for name, queue in self._queues.items()}

    def drain(self, timeout: float) -> None:
        """Begin a graceful shutdown: refuse new requests (503) from now on, and end the
        requests still open after ``timeout`` seconds with an error."""
        if self._draining:
            return
        self._draining = True
        log.info("draining: %d requests open", len(self._open_tickets))
        loop = asyncio.get_running_loop()
        self._drain_timer = loop.call_later(timeout, self._cut_all)

    async def close(self) -> None:
        """At shutdown: give requests still open a while to end (the server has cancelled
        them by then), and wait for their settlements."""
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d requests were still open at shutdown", len(self._open_tickets))
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    def _cut_all(self) -> None:
        if self._open_tickets:
            log.warning("drain timeout: ending %d open requests", len(self._open_tickets))
        for ticket in self._open_tickets.values():
            ticket.cut = True
            ticket.place.wake()

    async def _open(
        self,
        job: Job,
        caller: Caller,
        entry: Entry,
        run: Callable[[Meter], AsyncGenerator[E, None]],
        trace: Trace | None,
    ) -> Generation[Started | E | KeepAlive]:
        """Queue and hold for a request counted under ``entry`` (which the caller gives
        back if this raises)."""
        model = job.model.id
        trace = trace or Trace(str(uuid.uuid4()))
        if self._draining:
            raise self._refuse(model, "shutting_down", Overloaded("The server is shutting down."))
        queue = self._queues[job.model.backing]
        place = queue.enter(caller.account_id, job.prompt_tokens)
        if place is None:
            raise self._refuse(model, "overloaded", Overloaded("Server overloaded"))
        admitted_at = self._now()
        started = _started(trace.request_id, job, admitted_at)
        quote = self._prices.quote(model, admitted_at)
        try:
            await self._hold(
                started.id,
                model,
                caller,
                entry,
                quote.worst_case(prompt=job.prompt_tokens, max_output=job.max_tokens),
            )
        except BaseException:
            queue.leave(place)
            raise
        if not place.running:
            self._observer.queued(job.model.backing, queue.stats().waiting)
        ticket = _Ticket(
            started, caller, job, quote, admitted_at, Meter(self._block), entry, place, trace
        )
        self._open_tickets[started.id] = ticket
        self._idle.clear()
        settle = functools.partial(self._settle, ticket)
        return Generation(self._events(ticket, run), settle)

    async def _enter(
        self, caller: Caller, model: ResolvedModel, user_id: str | None, trace: Trace | None
    ) -> Entry:
        """Count the request against its account (429) and, when its engine serves other
        gateways too, against the engine's queue bound as every gateway on the limiter
        sees it (503); this gateway's own queue is checked once the request is prepared."""
        if trace is not None:
            trace.account_id, trace.model = caller.account_id, model.id
        queue = self._queues[model.backing]
        bound = queue.capacity + self._queue.max_requests
        shared = Counter(backing_key(model.backing), bound) if queue.shared else None
        try:
            return await self._admission.enter(caller.account_id, model.id, user_id, shared)
        except RateLimited as exc:
            raise self._refuse(model.id, "rate_limit", exc) from None
        except Overloaded as exc:
            raise self._refuse(model.id, "overloaded", exc) from None

    async def _hold(
        self, request_id: str, model: str, caller: Caller, entry: Entry, amount: Decimal
    ) -> None:
        """Hold ``amount`` (402 if the balance cannot cover it), then check the limit
        that the balance left allows (429)."""
        held = await self._wallet.hold(request_id, caller.account_id, self._currency, amount)
        if held is None:
            raise self._refuse(model, "balance", InsufficientBalance("Insufficient Balance"))
        try:
            await self._admission.check_balance(entry, held)
        except RateLimited as exc:
            await self._wallet.release(request_id)
            raise self._refuse(model, "rate_limit", exc) from None

    def _refuse(self, model: str, why: Refusal, error: DeepwellError) -> DeepwellError:
        self._observer.refused(model, why)
        return error

    async def _events(
        self, ticket: _Ticket, run: Callable[[Meter], AsyncGenerator[E, None]]
    ) -> AsyncGenerator[Started | E | KeepAlive, None]:
        try:
            async for keepalive in self._wait_turn(ticket):
                yield keepalive
            yield ticket.started
            async with aclosing(run(ticket.meter)) as events:
                async for event in events:
                    if ticket.cut:
                        raise _shutting_down()
                    ticket.observe(event, self._observer)
                    yield event
        except Exception:
            ticket.failed = True
            raise
        finally:
            await self._settle(ticket)

    async def _wait_turn(self, ticket: _Ticket) -> AsyncGenerator[KeepAlive, None]:
        """Wait for the engine's queue to start ``ticket``, with a keep-alive every
        ``keepalive_s``; an error past ``max_wait_s`` or when the server shuts down."""
        place = ticket.place
        limit = self._queue.max_wait_s
        while not place.running:
            waited = time.monotonic() - place.entered
            if ticket.cut:
                raise _shutting_down()
            if waited >= limit:
                raise Overloaded(
                    f"The request was not started within {limit:g} seconds: the server is "
                    "overloaded. Please retry later."
                )
            if not await place.wait(min(self._queue.keepalive_s, limit - waited)):
                yield KeepAlive()
        waited = time.monotonic() - place.entered
        ticket.trace.queued_ms = _ms(waited)
        backing = ticket.job.model.backing
        self._observer.dispatched(backing, self._queues[backing].stats().waiting, waited)

    async def _settle(self, ticket: _Ticket) -> None:
        """Settle ``ticket`` once and give back its places. The write runs as a task of
        its own, so that a cancelled caller (a client gone, a shutdown) cannot cut it
        halfway."""
        if ticket.settled:
            return
        ticket.settled = True
        self._queues[ticket.job.model.backing].leave(ticket.place)
        charge = ticket.charge(self._currency, self._now())
        ticket.trace.charge = charge
        task = asyncio.ensure_future(self._record(ticket, charge))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def _record(self, ticket: _Ticket, charge: Charge) -> None:
        try:
            await self._admission.leave(ticket.entry)
        except Exception:
            log.exception("giving back the places of request %s failed", charge.request_id)
        try:
            await self._wallet.settle(charge)
        except Exception:
            log.exception(
                "settling request %s failed; its hold is released at the next start",
                charge.request_id,
            )
        finally:
            self._observer.settled(charge)
            self._open_tickets.pop(charge.request_id, None)
            if not self._open_tickets:
                self._idle.set()


def _heavy(request: GenerationRequest) -> bool:
    """Whether preparing ``request`` may take long enough to run off the event loop."""
    if request.tools or request.response_schema is not None or request.json_output:
        return True
    text = sum(len(m.content or "") + len(m.reasoning_content or "") for m in request.messages)
    return text >= INLINE_CHARS


def _shutting_down() -> Overloaded:
    return Overloaded("The server is shutting down: the request was ended before it finished.")


def _started(request_id: str, job: Job, at: datetime) -> Started:
    """The first event of a generation: its id (also the ledger's), the time, the public
    id to echo."""
    return Started(
        id=request_id,
        model=job.model.id,
        created=int(at.timestamp()),
        thinking=job.thinking,
        fingerprint=fingerprint(job.model.backing),
        logprobs=job.logprobs,
        prompt_tokens=job.prompt_tokens,
    )


def fingerprint(backing: str) -> str:
    digest = hashlib.sha256(f"{backing}/{__version__}".encode()).hexdigest()
    return f"fp_{digest[:10]}"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
