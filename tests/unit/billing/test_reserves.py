"""Reserves: requests held against slices of a balance, settled in batches, exactly."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from tests.unit.charges import charge

from deepwell.billing.balances import BalanceInfo, Balances
from deepwell.billing.ledger import Ledger
from deepwell.billing.prices import from_nanos
from deepwell.billing.reserves import SLICE_REQUESTS, Reserves
from deepwell.store.db import Database
from deepwell.store.tables import Hold, LedgerEntry

HOLD = Decimal("0.14")  # what each request holds, and (see ``charge``) what it costs


def ledger(database: Database, *, charging: bool = True) -> Ledger:
    return Ledger(database, charging=charging, gateway_id="test")


async def started(database: Database, **options: object) -> Reserves:
    charging = bool(options.pop("charging", True))
    reserves = Reserves(ledger(database, charging=charging), **options)  # type: ignore[arg-type]
    reserves.start()
    return reserves


async def usd(database: Database, account_id: int) -> BalanceInfo:
    (info,) = await Balances(database).of(account_id)
    return info


async def held_becomes(database: Database, account_id: int, amount: Decimal) -> bool:
    """Whether the account's held amount becomes ``amount`` within a few seconds."""
    for _ in range(100):
        if (await usd(database, account_id)).held == amount:
            return True
        await asyncio.sleep(0.05)
    return False


async def rows(database: Database) -> tuple[int, int, Decimal]:
    """Hold rows, ledger rows, and what the ledger rows cost."""
    async with database.session() as session:
        holds = await session.scalar(select(func.count()).select_from(Hold))
        entries = await session.scalar(select(func.count()).select_from(LedgerEntry))
        cost = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.cost_nanos), 0)))
    return int(holds or 0), int(entries or 0), from_nanos(int(cost or 0))


async def test_a_funded_account_holds_from_one_slice(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal("1"))
    available = [await reserves.hold(f"r{n}", account, "USD", HOLD) for n in range(5)]
    assert [held.available if held else None for held in available] == [
        Decimal(100) - n * HOLD for n in range(1, 6)
    ]
    assert (await rows(database))[0] == 1
    assert (await usd(database, account)).held == SLICE_REQUESTS * HOLD
    for n in range(5):
        assert await reserves.settle(charge(f"r{n}", account))
    await reserves.written()
    assert await rows(database) == (1, 5, 5 * HOLD)
    after = await usd(database, account)
    assert after.total == Decimal("100") - 5 * HOLD
    assert after.held == (SLICE_REQUESTS - 5) * HOLD
    await reserves.close()
    assert (await usd(database, account)).held == 0
    assert (await rows(database))[0] == 0


async def test_a_busy_slice_grows_ahead_by_twice_as_much_each_time(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal("1"))
    for n in range(SLICE_REQUESTS // 2 + 1):  # past half of the first slice
        assert await reserves.hold(f"r{n}", account, "USD", HOLD) is not None
    # The slice grows in the background, by twice its first size.
    assert await held_becomes(database, account, 3 * SLICE_REQUESTS * HOLD)
    assert (await rows(database))[0] == 1
    await reserves.close()


async def test_below_the_kept_balance_each_request_holds_in_the_ledger(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("1.1"), "USD", granted=False)
    reserves = await started(database, keep=Decimal("1"))
    assert await reserves.hold("a", account, "USD", HOLD) is not None
    assert await reserves.hold("b", account, "USD", HOLD) is not None
    assert (await rows(database))[0] == 2
    assert (await usd(database, account)).held == 2 * HOLD
    assert await reserves.settle(charge("a", account))
    assert await rows(database) == (1, 1, HOLD)
    await reserves.release("b")
    await reserves.close()
    assert await usd(database, account) == BalanceInfo("USD", Decimal(0), Decimal("0.96"))


async def test_concurrent_requests_never_overspend(database: Database, account: int) -> None:
    """32 requests race for a balance that covers 10 of them, each costing its hold."""
    await Balances(database).credit("alice", Decimal("1.4"), "USD", granted=False)
    reserves = await started(database, keep=Decimal(0))

    async def request(n: int) -> bool:
        if not await reserves.hold(f"r{n}", account, "USD", HOLD):
            return False
        await asyncio.sleep(0)
        assert await reserves.settle(charge(f"r{n}", account))
        return True

    served = await asyncio.gather(*(request(n) for n in range(32)))
    await reserves.close()
    assert sum(served) == 10
    assert await usd(database, account) == BalanceInfo("USD", Decimal(0), Decimal(0))
    assert await rows(database) == (0, 10, 10 * HOLD)


async def test_a_request_is_settled_once(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal(0))
    await reserves.hold("once", account, "USD", HOLD)
    assert await reserves.settle(charge("once", account))
    assert not await reserves.settle(charge("once", account))
    await reserves.written()
    assert not await reserves.settle(charge("once", account))
    await reserves.close()
    assert (await usd(database, account)).total == Decimal("100") - HOLD
    assert await rows(database) == (0, 1, HOLD)


async def test_a_refused_request_gives_its_hold_back(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal(0))
    first = await reserves.hold("refused", account, "USD", HOLD)
    await reserves.release("refused")
    again = await reserves.hold("next", account, "USD", HOLD)
    assert first == again
    await reserves.close()


async def test_an_idle_slice_goes_back_to_its_account(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal(0), idle_s=0.05)
    await reserves.hold("r", account, "USD", HOLD)
    await asyncio.sleep(0.2)
    assert (await usd(database, account)).held == SLICE_REQUESTS * HOLD  # still held
    await reserves.settle(charge("r", account))
    assert await held_becomes(database, account, Decimal(0))
    assert await usd(database, account) == BalanceInfo("USD", Decimal(0), Decimal("100") - HOLD)
    assert (await rows(database))[0] == 0
    await reserves.close()


async def test_settlements_are_batched_and_written_for_a_read(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal(0), batch_s=60.0)
    for n in range(3):
        await reserves.hold(f"r{n}", account, "USD", HOLD)
        await reserves.settle(charge(f"r{n}", account))
    await asyncio.sleep(0.05)
    assert (await rows(database))[1] == 0  # gathering, not written yet
    balances = Balances(database, written=reserves.written)
    (info,) = await balances.of(account)
    assert info.total == Decimal("100") - 3 * HOLD
    await reserves.close()


async def test_without_charging_usage_is_recorded_not_deducted(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    reserves = await started(database, charging=False, keep=Decimal(0))
    held = await reserves.hold("free", account, "USD", Decimal("5"))
    assert held is not None
    assert held.available is None
    await reserves.settle(charge("free", account))
    await reserves.close()
    assert await usd(database, account) == BalanceInfo("USD", Decimal(0), Decimal("1"))
    assert await rows(database) == (0, 1, HOLD)


async def test_a_free_request_of_an_account_without_money_is_refused(
    database: Database, account: int
) -> None:
    reserves = await started(database, keep=Decimal(0))
    assert await reserves.hold("free", account, "USD", Decimal(0)) is None
    await reserves.close()


async def test_a_crash_leaves_a_slice_that_the_next_start_releases(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("100"), "USD", granted=False)
    reserves = await started(database, keep=Decimal(0))
    await reserves.hold("running", account, "USD", HOLD)
    # No close: the process died. Its next start releases what this gateway held.
    assert await ledger(database).release_stale(timedelta(hours=24)) == 1
    assert await usd(database, account) == BalanceInfo("USD", Decimal(0), Decimal("100"))
