"""A migrated database per test (SQLite, then PostgreSQL), and an account in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from deepwell.accounts.keys import KeyStore
from deepwell.store.db import Database, open_database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with await open_database(database_url) as opened:
        yield opened


@pytest.fixture
async def account(database: Database) -> int:
    """The id of the account ``alice``, made with a key."""
    created = await KeyStore(database).create("alice")
    found = await KeyStore(database).authenticate(created.key)
    assert found is not None
    return found.account_id
