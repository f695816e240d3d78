"""Ledger: holds that never overspend, settlements that are exact and happen once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from tests.unit.charges import FLASH, charge

from deepwell.accounts.keys import KeyStore
from deepwell.billing.balances import BalanceInfo, Balances
from deepwell.billing.ledger import Ledger
from deepwell.billing.prices import from_nanos
from deepwell.store.db import Database
from deepwell.store.tables import Hold, LedgerEntry

QUOTE = FLASH
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def ledger(database: Database, *, charging: bool = True, gateway: str = "test") -> Ledger:
    return Ledger(database, charging=charging, gateway_id=gateway)


async def usd(database: Database, account_id: int) -> BalanceInfo:
    (info,) = await Balances(database).of(account_id)
    return info


async def ledger_sum(database: Database) -> Decimal:
    async with database.session() as session:
        total = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.cost_nanos), 0)))
    return from_nanos(int(total or 0))


async def open_holds(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Hold)) or 0)


async def test_a_hold_needs_the_whole_amount(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    wallet = ledger(database)
    assert await wallet.hold("r1", account, "USD", Decimal("0.6"))
    assert not await wallet.hold("r2", account, "USD", Decimal("0.400000001"))
    assert await wallet.hold("r3", account, "USD", Decimal("0.4"))
    assert (await usd(database, account)).held == Decimal("1")
    assert await open_holds(database) == 2


async def test_a_hold_counts_its_accounts_holders(database: Database, account: int) -> None:
    caller = await KeyStore(database).authenticate((await KeyStore(database).create("bob")).key)
    assert caller is not None
    for name in ("alice", "bob"):
        await Balances(database).credit(name, Decimal("1"), "USD", granted=False)
    wallet = ledger(database)
    first = await wallet.hold("r1", account, "USD", Decimal("0.1"))
    second = await wallet.hold("r2", account, "USD", Decimal("0.1"))
    other = await wallet.hold("r3", caller.account_id, "USD", Decimal("0.1"))
    assert first is not None
    assert first.holders == 1
    assert other is not None
    assert other.holders == 1
    assert second is not None
    assert (second.holders, second.available) == (2, Decimal("0.8"))
    await wallet.release("r1")
    again = await wallet.hold("r4", account, "USD", Decimal("0.1"))
    assert again is not None
    assert again.holders == 2


async def test_holders_are_counted_only_under_a_low_balance(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    wallet = Ledger(database, charging=True, gateway_id="test", count_below=Decimal("0.5"))
    plenty = await wallet.hold("r1", account, "USD", Decimal("0.1"))
    assert plenty is not None
    assert plenty.holders is None
    low = await wallet.hold("r2", account, "USD", Decimal("0.6"))
    assert low is not None
    assert (low.available, low.holders) == (Decimal("0.3"), 2)


async def test_no_balance_row_is_no_money(database: Database, account: int) -> None:
    assert not await ledger(database).hold("r1", account, "USD", Decimal("0.000000001"))
    assert not await ledger(database).hold("r1", account, "CNY", Decimal("0"))


async def test_settling_spends_granted_money_first(database: Database, account: int) -> None:
    balances = Balances(database)
    await balances.credit("alice", Decimal("0.10"), "USD", granted=True)
    await balances.credit("alice", Decimal("1"), "USD", granted=False)
    wallet = ledger(database)
    assert await wallet.hold("r1", account, "USD", Decimal("0.5"))
    # 1M miss tokens at 0.14 and 1M output tokens at 0.28: 0.42.
    assert await wallet.settle(charge("r1", account, output_tokens=1_000_000))
    info = await usd(database, account)
    assert info.granted == Decimal(0)
    assert info.topped_up == Decimal("0.68")
    assert info.held == Decimal(0)
    assert await open_holds(database) == 0
    assert await ledger_sum(database) == Decimal("0.42")


async def test_a_settlement_within_the_grant_leaves_topped_up_money(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=True)
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    wallet = ledger(database)
    await wallet.hold("r1", account, "USD", Decimal("0.5"))
    await wallet.settle(charge("r1", account, miss_tokens=1000, output_tokens=10))
    info = await usd(database, account)
    assert info.topped_up == Decimal("1")
    assert info.granted == Decimal("1") - Decimal("0.0001428")


async def test_a_request_is_settled_once(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    wallet = ledger(database)
    await wallet.hold("r1", account, "USD", Decimal("0.2"))
    assert await wallet.settle(charge("r1", account))
    assert not await wallet.settle(charge("r1", account))
    info = await usd(database, account)
    assert info.topped_up == Decimal("0.86")
    assert info.held == Decimal(0)
    assert await ledger_sum(database) == Decimal("0.14")


async def test_the_ledger_row_has_what_it_was_charged(database: Database, account: int) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    wallet = ledger(database)
    await wallet.hold("r1", account, "USD", Decimal("0.2"))
    windowed = replace(QUOTE, window="off-peak")
    await wallet.settle(
        charge("r1", account, hit_tokens=640, miss_tokens=7, output_tokens=30, quote=windowed)
    )
    async with database.session() as session:
        row = await session.scalar(select(LedgerEntry))
    assert row is not None
    assert (row.hit_tokens, row.miss_tokens, row.output_tokens) == (640, 7, 30)
    assert from_nanos(row.miss_price_nanos) == Decimal("0.14")
    assert row.price_window == "off-peak"
    assert row.charged is True
    assert from_nanos(row.cost_nanos) == Decimal("0.000011172")


async def test_without_charging_usage_is_recorded_not_deducted(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    wallet = ledger(database, charging=False)
    assert await wallet.hold("r1", account, "USD", Decimal("1000"))
    assert await open_holds(database) == 0
    assert await wallet.settle(charge("r1", account))
    assert (await usd(database, account)).topped_up == Decimal("1")
    async with database.session() as session:
        row = await session.scalar(select(LedgerEntry))
    assert row is not None
    assert row.charged is False
    assert from_nanos(row.cost_nanos) == Decimal("0.14")


async def test_a_restart_releases_its_own_holds_and_old_ones(
    database: Database, account: int
) -> None:
    await Balances(database).credit("alice", Decimal("1"), "USD", granted=False)
    await ledger(database, gateway="a").hold("mine", account, "USD", Decimal("0.1"))
    await ledger(database, gateway="b").hold("fresh", account, "USD", Decimal("0.2"))
    await ledger(database, gateway="b").hold("old", account, "USD", Decimal("0.3"))
    async with database.session() as session, session.begin():
        await session.execute(
            update(Hold)
            .where(Hold.request_id == "old")
            .values(created_at=datetime.now(UTC) - timedelta(days=2))
        )
    released = await ledger(database, gateway="a").release_stale(timedelta(days=1))
    assert released == 2
    assert (await usd(database, account)).held == Decimal("0.2")
    assert await open_holds(database) == 1


async def test_concurrent_requests_never_overspend(database: Database, account: int) -> None:
    """32 requests race for a balance that covers 10 of them, each costing its hold."""
    await Balances(database).credit("alice", Decimal("1.4"), "USD", granted=False)
    before = (await usd(database, account)).total
    wallet = ledger(database)

    async def request(n: int) -> bool:
        if not await wallet.hold(f"r{n}", account, "USD", Decimal("0.14")):
            return False
        await asyncio.sleep(0)
        await wallet.settle(charge(f"r{n}", account))
        return True

    served = await asyncio.gather(*(request(n) for n in range(32)))
    assert sum(served) == 10
    after = await usd(database, account)
    assert after.total >= 0
    assert after.held == 0
    assert before - after.total == await ledger_sum(database)
