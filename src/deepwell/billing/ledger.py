"""Holding and settling the cost of requests, exactly, under concurrency and crashes.

A request is admitted only once a hold for its worst-case cost is placed: one
conditional ``UPDATE`` that raises the account's ``held`` only while the balance
covers it, so two requests racing for the last cent cannot both win. Settlement is
one transaction: the ledger row, the balance debit (granted money first, then
topped-up) and the hold's release. A request id is settled at most once: its ledger
row is unique, and a second settlement finds it and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Insert, Update, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from deepwell.billing.prices import PriceQuote, from_nanos, to_nanos
from deepwell.store.db import Database
from deepwell.store.tables import Balance, Hold, LedgerEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request used and costs, settled against its hold (if any)."""

    request_id: str
    account_id: int
    key_id: str | None
    model: str
    backing: str
    currency: str
    hit_tokens: int
    miss_tokens: int
    output_tokens: int
    reasoning_tokens: int
    quote: PriceQuote
    finish_reason: str
    ttft_ms: int | None
    duration_ms: int
    started_at: datetime
    finished_at: datetime

    @property
    def cost(self) -> Decimal:
        return self.quote.cost(
            hit=self.hit_tokens, miss=self.miss_tokens, output=self.output_tokens
        )


@dataclass(frozen=True, slots=True)
class Held:
    """A hold placed: ``available`` is what the account has left after it (None when
    nothing is charged), and ``holders`` how many of its requests hold money now, this
    one included (holds of one account are placed one after the other, so the n-th
    sees n; None when nothing is charged or when it was not counted, see ``Ledger``)."""

    available: Decimal | None
    holders: int | None = None


class Ledger:
    """Holds and settlements over a :class:`Database`.

    A hold counts the account's holds (``Held.holders``) only when what it leaves is
    under ``count_below`` (where a low balance lowers the account's limit), or always
    when that is None.

    With ``charging`` off every hold succeeds without touching the database, and
    settlements record the cost without deducting it. ``gateway_id`` marks this
    server's holds, so that a restart releases exactly the holds its previous run left.
    """

    def __init__(
        self,
        database: Database,
        *,
        charging: bool,
        gateway_id: str,
        count_below: Decimal | None = None,
    ) -> None:
        self._database = database
        self.charging = charging
        self._gateway = gateway_id
        self._count_below = count_below

    async def hold(
        self, request_id: str, account_id: int, currency: str, amount: Decimal
    ) -> Held | None:
        """Reserve ``amount`` for ``request_id``; None if the balance cannot cover it."""
        if not self.charging:
            return Held(available=None)
        nanos = to_nanos(amount)
        async with self._database.engine.begin() as connection:
            statement = _raise_held(account_id, currency, nanos, keep=0)
            left = (await connection.execute(statement)).scalar_one_or_none()
            if left is None:
                return None
            await connection.execute(self._new_hold(request_id, account_id, currency, nanos))
            holders = None
            if self._count_below is None or from_nanos(left) < self._count_below:
                holders = await connection.scalar(
                    select(func.count())
                    .select_from(Hold)
                    .where(Hold.account_id == account_id, Hold.currency == currency)
                )
        return Held(available=from_nanos(left), holders=holders)

    async def release(self, request_id: str) -> None:
        """Give back the hold of a request that was refused after it was placed: no
        ledger row, nothing charged."""
        async with self._database.engine.begin() as connection:
            hold = await _take_hold(connection, request_id)
            if hold is not None:
                await connection.execute(_release(hold))

    async def settle(self, charge: Charge) -> bool:
        """Record ``charge``, deduct its cost and release its hold, in one transaction.

        Returns False (and changes nothing) if ``charge.request_id`` was settled before.
        """
        try:
            async with self._database.engine.begin() as connection:
                await connection.execute(insert(LedgerEntry).values(_entry(charge, self.charging)))
                hold = await _take_hold(connection, charge.request_id)
                if self.charging:
                    released = hold.amount_nanos if hold is not None else 0
                    debit = _debit(
                        charge.account_id, charge.currency, to_nanos(charge.cost), released
                    )
                    await connection.execute(debit)
        except IntegrityError:
            log.warning("request %s was settled already", charge.request_id)
            return False
        return True

    async def reserve(
        self, reservation_id: str, account_id: int, currency: str, amount: Decimal, keep: Decimal
    ) -> Decimal | None:
        """Add ``amount`` to the hold ``reservation_id`` (made if new) while the account
        keeps at least ``keep`` available beside it; what it keeps, or None (nothing
        changed) if it cannot."""
        nanos = to_nanos(amount)
        async with self._database.engine.begin() as connection:
            statement = _raise_held(account_id, currency, nanos, keep=to_nanos(keep))
            left = (await connection.execute(statement)).scalar_one_or_none()
            if left is None:
                return None
            grown = await connection.execute(_grow(reservation_id, nanos))
            if grown.rowcount == 0:
                hold = self._new_hold(reservation_id, account_id, currency, nanos)
                await connection.execute(hold)
        return from_nanos(left)

    def _new_hold(self, request_id: str, account_id: int, currency: str, nanos: int) -> Insert:
        return insert(Hold).values(
            request_id=request_id,
            account_id=account_id,
            currency=currency,
            amount_nanos=nanos,
            gateway_id=self._gateway,
            created_at=datetime.now(UTC),
        )

    async def give_back(
        self, reservation_id: str, account_id: int, currency: str, amount: Decimal
    ) -> None:
        """Take ``amount`` off the hold ``reservation_id`` (removed once it holds nothing)."""
        nanos = to_nanos(amount)
        taken = _Taken(account_id, currency, nanos)
        async with self._database.engine.begin() as connection:
            await connection.execute(_release(taken))
            await connection.execute(_grow(reservation_id, -nanos))
            await connection.execute(
                delete(Hold).where(Hold.request_id == reservation_id, Hold.amount_nanos <= 0)
            )

    async def settle_reserved(
        self, charges: Sequence[Charge], reservations: Mapping[str, str]
    ) -> None:
        """Settle ``charges`` held against reservations (``reservations``: request id →
        reservation id) in one transaction: their ledger rows, each account's debit, and
        each reservation less what its requests cost. A request settled before is left
        out (the others are then settled one transaction each)."""
        try:
            async with self._database.engine.begin() as connection:
                await self._settle_reserved(connection, charges, reservations)
            return
        except IntegrityError:
            if len(charges) == 1:
                log.warning("request %s was settled already", charges[0].request_id)
                return
        for charge in charges:
            await self.settle_reserved([charge], reservations)

    async def _settle_reserved(
        self,
        connection: AsyncConnection,
        charges: Sequence[Charge],
        reservations: Mapping[str, str],
    ) -> None:
        await connection.execute(
            insert(LedgerEntry), [_entry(charge, self.charging) for charge in charges]
        )
        if not self.charging:
            return
        costs: dict[tuple[str, int, str], int] = {}
        for charge in charges:
            where = (reservations[charge.request_id], charge.account_id, charge.currency)
            costs[where] = costs.get(where, 0) + to_nanos(charge.cost)
        for (reservation_id, account_id, currency), cost in costs.items():
            await connection.execute(_debit(account_id, currency, cost, cost))
            await connection.execute(_grow(reservation_id, -cost))

    async def release_stale(self, older_than: timedelta) -> int:
        """Release the holds this gateway's previous run left (it is not running: this
        one is), and any hold older than ``older_than``; returns how many."""
        cutoff = datetime.now(UTC) - older_than
        stale = or_(Hold.gateway_id == self._gateway, Hold.created_at < cutoff)
        async with self._database.session() as session, session.begin():
            holds = (await session.scalars(select(Hold).where(stale))).all()
            for hold in holds:
                await session.execute(_release(hold))
                await session.delete(hold)
        for hold in holds:
            log.warning(
                "released a hold left by an unfinished request: %s (account %d, %s nanos)",
                hold.request_id,
                hold.account_id,
                hold.amount_nanos,
            )
        return len(holds)


@dataclass(frozen=True, slots=True)
class _Taken:
    """A hold removed: what it held, and where."""

    account_id: int
    currency: str
    amount_nanos: int


async def _take_hold(connection: AsyncConnection, request_id: str) -> _Taken | None:
    statement = (
        delete(Hold)
        .where(Hold.request_id == request_id)
        .returning(Hold.account_id, Hold.currency, Hold.amount_nanos)
    )
    row = (await connection.execute(statement)).one_or_none()
    return None if row is None else _Taken(row.account_id, row.currency, row.amount_nanos)


def _release(hold: Hold | _Taken) -> Update:
    return (
        update(Balance)
        .where(Balance.account_id == hold.account_id, Balance.currency == hold.currency)
        .values(held_nanos=Balance.held_nanos - hold.amount_nanos)
    )


def _raise_held(account_id: int, currency: str, nanos: int, *, keep: int) -> Update:
    """Hold ``nanos`` more of the account's balance while at least ``keep`` stays
    available beside it (a conditional update: nothing changes when it cannot); it
    returns what is then left available."""
    available = Balance.granted_nanos + Balance.topped_up_nanos - Balance.held_nanos
    return (
        update(Balance)
        .where(
            Balance.account_id == account_id,
            Balance.currency == currency,
            available - nanos >= keep,
        )
        .values(held_nanos=Balance.held_nanos + nanos)
        .returning(available)
    )


def _grow(reservation_id: str, nanos: int) -> Update:
    """The hold ``reservation_id`` larger by ``nanos`` (smaller, when negative), and
    marked as in use now (so that no restart takes it for a hold left long ago)."""
    return (
        update(Hold)
        .where(Hold.request_id == reservation_id)
        .values(amount_nanos=Hold.amount_nanos + nanos, created_at=datetime.now(UTC))
    )


def _debit(account_id: int, currency: str, cost: int, released: int) -> Update:
    """Take ``cost`` nanos from the granted balance first, then from the topped-up one,
    and release ``released`` nanos of holds; every expression reads the row as it was
    before the update."""
    granted = Balance.granted_nanos
    enough = granted >= cost
    return (
        update(Balance)
        .where(Balance.account_id == account_id, Balance.currency == currency)
        .values(
            held_nanos=Balance.held_nanos - released,
            granted_nanos=case((enough, granted - cost), else_=0),
            topped_up_nanos=case(
                (enough, Balance.topped_up_nanos),
                else_=Balance.topped_up_nanos - (cost - granted),
            ),
        )
    )


def _entry(charge: Charge, charged: bool) -> dict[str, object]:
    """The ledger row of ``charge``, as column values."""
    quote = charge.quote
    return dict(
        request_id=charge.request_id,
        account_id=charge.account_id,
        key_id=charge.key_id,
        model=charge.model,
        backing=charge.backing,
        currency=charge.currency,
        hit_tokens=charge.hit_tokens,
        miss_tokens=charge.miss_tokens,
        output_tokens=charge.output_tokens,
        reasoning_tokens=charge.reasoning_tokens,
        hit_price_nanos=to_nanos(quote.hit),
        miss_price_nanos=to_nanos(quote.miss),
        output_price_nanos=to_nanos(quote.output),
        price_window=quote.window,
        cost_nanos=to_nanos(charge.cost),
        charged=charged,
        finish_reason=charge.finish_reason,
        ttft_ms=charge.ttft_ms,
        duration_ms=charge.duration_ms,
        started_at=charge.started_at,
        finished_at=charge.finished_at,
    )
