"""Balances: credits (top-ups and grants), and reading them back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from deepwell.accounts.keys import KeyStore
from deepwell.billing.balances import BalanceInfo, Balances, UnknownAccount
from deepwell.store.db import Database, open_database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with await open_database(database_url) as opened:
        await KeyStore(opened).create("alice")
        await KeyStore(opened).create("bob")
        yield opened


async def test_a_new_account_has_no_money(database: Database) -> None:
    found = await Balances(database).named("alice")
    assert found.account == "alice"
    assert found.balances == ()


async def test_credits_add_up_per_currency(database: Database) -> None:
    balances = Balances(database)
    await balances.credit("alice", Decimal("10"), "USD", granted=True)
    await balances.credit("alice", Decimal("2.5"), "USD", granted=False)
    info = await balances.credit("alice", Decimal("0.000000001"), "USD", granted=False)
    assert info == BalanceInfo("USD", Decimal("10"), Decimal("2.500000001"), Decimal(0))
    assert info.total == Decimal("12.500000001")
    await balances.credit("alice", Decimal("7"), "CNY", granted=False)
    found = await balances.named("alice")
    assert [b.currency for b in found.balances] == ["CNY", "USD"]
    assert (await balances.named("bob")).balances == ()


async def test_every_account_is_listed(database: Database) -> None:
    await Balances(database).credit("bob", Decimal("1"), "USD", granted=False)
    listed = await Balances(database).all()
    assert [(a.account, len(a.balances)) for a in listed] == [("alice", 0), ("bob", 1)]


async def test_unknown_accounts_and_bad_amounts_are_refused(database: Database) -> None:
    balances = Balances(database)
    with pytest.raises(UnknownAccount, match="nobody"):
        await balances.credit("nobody", Decimal("1"), "USD", granted=False)
    with pytest.raises(UnknownAccount):
        await balances.named("nobody")
    with pytest.raises(ValueError, match="positive"):
        await balances.credit("alice", Decimal("-1"), "USD", granted=False)
    with pytest.raises(ValueError, match="decimal places"):
        await balances.credit("alice", Decimal("1e-10"), "USD", granted=False)
