"""LimitStore: per-account concurrency overrides, set by account name, read by id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from deepwell.accounts.keys import KeyStore
from deepwell.accounts.limits import LimitStore
from deepwell.billing.balances import UnknownAccount
from deepwell.limits.policy import ALL_MODELS
from deepwell.store.db import Database, open_database
from deepwell.store.tables import ConcurrencyLimit

FLASH = "deepseek-v4-flash"
PRO = "deepseek-v4-pro"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The store on SQLite and on PostgreSQL."""
    database = await open_database(database_url)
    yield database
    await database.close()


@pytest.fixture
def store(database: Database) -> LimitStore:
    return LimitStore(database)


async def _account(database: Database, name: str) -> int:
    created = await KeyStore(database).create(name)
    caller = await KeyStore(database).authenticate(created.key)
    assert caller is not None
    return caller.account_id


async def test_no_overrides_by_default(database: Database, store: LimitStore) -> None:
    alice = await _account(database, "alice")
    assert await store.overrides(alice) == {}
    assert await store.all() == {}


async def test_set_defaults_to_every_model(database: Database, store: LimitStore) -> None:
    alice = await _account(database, "alice")
    await store.set("alice", 3)
    assert await store.overrides(alice) == {ALL_MODELS: 3}


async def test_set_per_model_and_replace(database: Database, store: LimitStore) -> None:
    alice = await _account(database, "alice")
    await store.set("alice", 3)
    await store.set("alice", 5, FLASH)
    await store.set("alice", 2, FLASH)
    assert await store.overrides(alice) == {ALL_MODELS: 3, FLASH: 2}


async def test_none_removes_only_that_override(database: Database, store: LimitStore) -> None:
    alice = await _account(database, "alice")
    await store.set("alice", 3)
    await store.set("alice", 5, FLASH)
    await store.set("alice", None, FLASH)
    assert await store.overrides(alice) == {ALL_MODELS: 3}
    await store.set("alice", None)
    await store.set("alice", None)  # removing what is not there is no error
    assert await store.overrides(alice) == {}


async def test_set_updates_the_time(database: Database, store: LimitStore) -> None:
    await _account(database, "alice")
    await store.set("alice", 3, PRO)
    async with database.session() as session:
        first = await session.scalar(select(ConcurrencyLimit.updated_at))
    await store.set("alice", 4, PRO)
    async with database.session() as session:
        second = await session.scalar(select(ConcurrencyLimit.updated_at))
    assert first is not None
    assert second is not None
    assert first.tzinfo is not None
    assert second >= first


async def test_all_groups_by_account(database: Database, store: LimitStore) -> None:
    alice = await _account(database, "alice")
    bob = await _account(database, "bob")
    await _account(database, "carol")
    await store.set("alice", 3)
    await store.set(" bob ", 1, PRO)
    await store.set("bob", 7, FLASH)
    assert await store.all() == {alice: {ALL_MODELS: 3}, bob: {FLASH: 7, PRO: 1}}
    assert await store.overrides(bob) == {FLASH: 7, PRO: 1}


async def test_unknown_account(store: LimitStore) -> None:
    with pytest.raises(UnknownAccount, match="no account named 'nobody'"):
        await store.set("nobody", 3)
    with pytest.raises(UnknownAccount):
        await store.set("nobody", None)


@pytest.mark.parametrize("concurrency", [0, -1])
async def test_concurrency_must_be_positive(
    database: Database, store: LimitStore, concurrency: int
) -> None:
    await _account(database, "alice")
    with pytest.raises(ValueError, match="at least 1"):
        await store.set("alice", concurrency)


@pytest.mark.parametrize("model", ["", "  ", "m" * 129])
async def test_model_ids_are_checked(database: Database, store: LimitStore, model: str) -> None:
    await _account(database, "alice")
    with pytest.raises(ValueError, match="model id"):
        await store.set("alice", 2, model)


async def test_the_database_refuses_a_zero_limit(database: Database) -> None:
    alice = await _account(database, "alice")
    with pytest.raises(IntegrityError):
        async with database.session() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO concurrency_limits (account_id, model, concurrency, updated_at)"
                    " VALUES (:account, '*', 0, CURRENT_TIMESTAMP)"
                ),
                {"account": alice},
            )


async def test_concurrent_sets_leave_one_row(database: Database, store: LimitStore) -> None:
    alice = await _account(database, "alice")
    await asyncio.gather(*(store.set("alice", n, FLASH) for n in range(1, 9)))
    overrides = await store.overrides(alice)
    assert list(overrides) == [FLASH]
    assert 1 <= overrides[FLASH] <= 8
