"""Holding against slices of balances this gateway reserved, and settling in batches.

The ledger's hold and settlement are a database write transaction each; under load
those two writes are most of what a request costs the gateway. For an account with
money to spare, ``Reserves`` instead reserves a slice of its balance (one ledger hold,
for several requests' worth) and holds each request against the slice in memory; the
settlements are written together: one writer lets them gather for ``BATCH_S`` after
the first, then writes every request settled since the last batch in one transaction.
A request's ledger row is therefore committed a moment after its response: ``written``
writes at once and waits for it, and balance and usage reads through this gateway call
it first.

It stays exact where exactness is visible:

- Holds never exceed a balance: a slice is reserved with the ledger's conditional
  update, and the requests held against it never hold more than it has.
- A slice is reserved only while the account keeps ``keep`` (the low balance under
  which its concurrency limit is lowered) available beside it; below that, each request
  holds and settles through the ledger one by one, as before.
- A slice no request has held for ``idle_s`` goes back to its account, so that other
  gateways can hold that money again.
- Every settlement is written at most once (the ledger row of a request id is unique);
  a crash loses the batch not yet committed (those requests are not charged), and the
  next start releases this gateway's slices like its other holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from deepwell.billing.ledger import Charge, Held, Ledger
from deepwell.billing.prices import from_nanos, to_nanos

log = logging.getLogger(__name__)

SLICE_REQUESTS = 16
"""A slice is first reserved for this many requests like the one that needed it; each
time it grows again, it grows by twice as much as the time before (at most a quarter of
what the account has beside it), so that a busy account's slice grows rarely. It grows
in the background once less than half its last growth is left: requests wait for it
only when it runs out."""

IDLE_S = 1.0
"""A slice no request has held for this long is given back to its account."""

BATCH_S = 0.05
"""How long the writer lets settlements gather before it writes them (unless a read
is waiting for them): the most a crash can lose, and what lets requests that follow
one another, not only those that overlap, share a transaction."""


@dataclass(slots=True)
class _Slice:
    """Money of one account (in one currency) that this gateway reserved, in nanos."""

    account_id: int
    currency: str
    reservation_id: str = field(default_factory=lambda: f"reserve-{uuid.uuid4().hex}")
    reserved: int = 0
    holding: int = 0
    requests: int = 0
    kept: int = 0
    """What the account had available beside its slices when this one last grew."""
    step: int = 0
    """What the slice grew by last (0 until it first grew: no hold of it in the ledger)."""
    used_at: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def free(self) -> int:
        return self.reserved - self.holding

    @property
    def in_ledger(self) -> bool:
        return self.step > 0

    def take(self, nanos: int) -> bool:
        if self.free < nanos:
            return False
        self.holding += nanos
        self.requests += 1
        self.used_at = time.monotonic()
        return True

    def put_back(self, nanos: int, spent: int = 0) -> None:
        self.holding -= nanos
        self.reserved -= spent
        self.requests -= 1
        self.used_at = time.monotonic()

    def available(self) -> Decimal:
        return from_nanos(self.kept + self.free)

    def low(self) -> bool:
        """Whether less than half the last growth is left (time to grow again)."""
        return self.free < self.step // 2


@dataclass(frozen=True, slots=True)
class _Local:
    """A request held in memory: against ``slice`` (None when nothing is charged)."""

    slice: _Slice | None
    nanos: int


class Reserves:
    """The gateway's wallet: holds and settlements over a :class:`Ledger`, from slices
    where the account can spare them (see the module's docstring). ``start`` it on the
    running loop; ``close`` writes what is left and gives the slices back."""

    def __init__(
        self, ledger: Ledger, *, keep: Decimal, idle_s: float = IDLE_S, batch_s: float = BATCH_S
    ) -> None:
        self._ledger = ledger
        self._keep = keep
        self._idle_s = idle_s
        self._batch_s = batch_s
        self._slices: dict[tuple[int, str], _Slice] = {}
        self._local: dict[str, _Local] = {}
        self._pending: list[Charge] = []
        self._unwritten: dict[str, str | None] = {}
        """Request id → reservation id (None when nothing is charged), until written."""
        self._next: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._now = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._refills: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deepwell-ledger-writer")

    async def close(self) -> None:
        self._closing = True
        if self._refills:
            await asyncio.gather(*self._refills, return_exceptions=True)
        self._wake.set()
        self._now.set()
        if self._task is not None:
            await self._task

    async def hold(
        self, request_id: str, account_id: int, currency: str, amount: Decimal
    ) -> Held | None:
        """Hold ``amount`` for ``request_id``; None if the balance cannot cover it."""
        if not self._ledger.charging:
            self._local[request_id] = _Local(None, 0)
            return Held(available=None)
        nanos = to_nanos(amount)
        if nanos <= 0:  # nothing to reserve; the ledger still refuses an account without money
            return await self._ledger.hold(request_id, account_id, currency, amount)
        key = (account_id, currency)
        slice_ = self._slices.get(key) or self._slices.setdefault(key, _Slice(account_id, currency))
        if slice_.take(nanos):
            if slice_.low() and not slice_.lock.locked():
                self._refill(slice_)
        elif not await self._grow(slice_, nanos):
            return await self._ledger.hold(request_id, account_id, currency, amount)
        self._local[request_id] = _Local(slice_, nanos)
        return Held(available=slice_.available())

    async def release(self, request_id: str) -> None:
        """Give back the hold of a request refused after it was placed."""
        local = self._local.pop(request_id, None)
        if local is None:
            await self._ledger.release(request_id)
        elif local.slice is not None:
            local.slice.put_back(local.nanos)

    async def settle(self, charge: Charge) -> bool:
        """Settle ``charge``: at once for a request held in memory (its ledger row is
        written with the next batch), else through the ledger. False if its request was
        settled before."""
        if charge.request_id in self._unwritten:
            return False
        local = self._local.pop(charge.request_id, None)
        if local is None:
            return await self._ledger.settle(charge)
        reservation = None
        if local.slice is not None:
            local.slice.put_back(local.nanos, spent=to_nanos(charge.cost))
            reservation = local.slice.reservation_id
        self._unwritten[charge.request_id] = reservation
        self._pending.append(charge)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        self._wake.set()
        return True

    async def written(self) -> None:
        """Wait until every settlement made so far is in the ledger (written at once)."""
        if self._next is not None:
            self._now.set()
            await asyncio.shield(self._next)

    async def _grow(self, slice_: _Slice, nanos: int) -> bool:
        """Reserve more for ``slice_`` and take ``nanos`` from it; False if the account
        cannot spare it."""
        async with slice_.lock:
            if slice_.take(nanos):
                return True
            need = nanos - slice_.free
            step = max(self._step(slice_, nanos), need)
            if not await self._reserve(slice_, step) and step > need:
                await self._reserve(slice_, need)
            return slice_.take(nanos)

    def _refill(self, slice_: _Slice) -> None:
        """Grow ``slice_`` in the background, before it runs out."""

        async def refill() -> None:
            async with slice_.lock:
                if slice_.low():
                    await self._reserve(slice_, self._step(slice_, 0))

        task = asyncio.create_task(refill())
        self._refills.add(task)
        task.add_done_callback(self._refilled)

    def _refilled(self, task: asyncio.Task[None]) -> None:
        self._refills.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("growing a reserved balance failed", exc_info=task.exception())

    def _step(self, slice_: _Slice, nanos: int) -> int:
        """How much ``slice_`` grows by next (see ``SLICE_REQUESTS``)."""
        step = max(2 * slice_.step, nanos * SLICE_REQUESTS)
        if slice_.in_ledger:
            step = min(step, (slice_.kept - to_nanos(self._keep)) // 4)
        return step

    async def _reserve(self, slice_: _Slice, nanos: int) -> bool:
        if nanos <= 0:
            return False
        kept = await self._ledger.reserve(
            slice_.reservation_id,
            slice_.account_id,
            slice_.currency,
            from_nanos(nanos),
            self._keep,
        )
        if kept is None:
            return False
        slice_.reserved += nanos
        slice_.kept = to_nanos(kept)
        slice_.step = nanos
        return True

    async def _run(self) -> None:
        while not self._closing:
            await _wait(self._wake, self._idle_s)
            if self._pending and not self._closing:
                # Let settlements gather, unless a read waits for them.
                await _wait(self._now, self._batch_s)
            await self._write()
            await self._give_back(idle_only=True)
        await self._write()
        await self._give_back(idle_only=False)

    async def _write(self) -> None:
        """Write the settlements made so far, as many batches as it takes to catch up."""
        while self._pending:
            charges, done = self._pending, self._next
            self._pending, self._next = [], None
            reservations = {}
            for charge in charges:
                reservation = self._unwritten[charge.request_id]
                if reservation is not None:
                    reservations[charge.request_id] = reservation
            try:
                await self._ledger.settle_reserved(charges, reservations)
            except Exception:
                log.exception(
                    "settling %d requests failed; their slices are released at the next start",
                    len(charges),
                )
            finally:
                for charge in charges:
                    del self._unwritten[charge.request_id]
                if done is not None:
                    done.set_result(None)

    async def _give_back(self, *, idle_only: bool) -> None:
        """Give back the slices no request holds (those idle for ``idle_s``, unless
        closing). Only with nothing left to write: a slice given back while its
        requests' costs were still unwritten would leave an empty hold behind."""
        now = time.monotonic()
        for key, slice_ in list(self._slices.items()):
            if self._pending or slice_.requests or slice_.lock.locked():
                continue
            if idle_only and now - slice_.used_at < self._idle_s:
                continue
            del self._slices[key]
            if not slice_.in_ledger:
                continue
            try:
                await self._ledger.give_back(
                    slice_.reservation_id,
                    slice_.account_id,
                    slice_.currency,
                    from_nanos(slice_.reserved),
                )
            except Exception:
                log.exception("giving back a reserved balance failed; the next start will")


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` have passed; then clear it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()
