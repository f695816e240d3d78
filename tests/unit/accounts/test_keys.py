"""KeyStore: keys are hashed at rest, authenticate reads the database every time."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from deepwell.accounts.keys import KeyStore, generate_key, hash_key
from deepwell.store.db import Database, open_database
from deepwell.vocabulary import Caller


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The store on SQLite and on PostgreSQL."""
    database = await open_database(database_url)
    yield database
    await database.close()


@pytest.fixture
def store(database: Database) -> KeyStore:
    return KeyStore(database)


def test_generate_key_format() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"sk-[0-9a-f]{32}", key) for key in keys)


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("sk-abc") == "1460db1b6902f8b1fc2a40d9381a24d0fd22c3bc1b2c6f999c521da73776fbe0"


async def test_create_then_authenticate(store: KeyStore) -> None:
    created = await store.create("alice", "laptop")
    assert re.fullmatch(r"key_[0-9a-f]{16}", created.key_id)
    assert created.account == "alice"
    assert created.name == "laptop"
    assert created.created_at.tzinfo is not None
    caller = await store.authenticate(created.key)
    assert isinstance(caller, Caller)
    assert caller.account == "alice"
    assert caller.key_id == created.key_id


async def test_created_key_repr_hides_the_key(store: KeyStore) -> None:
    created = await store.create("alice")
    assert created.key not in repr(created)


async def test_unknown_key_does_not_authenticate(store: KeyStore) -> None:
    await store.create("alice")
    assert await store.authenticate(generate_key()) is None
    assert await store.authenticate("") is None


async def test_create_reuses_existing_account(store: KeyStore) -> None:
    first = await store.create("alice")
    second = await store.create("alice")
    one = await store.authenticate(first.key)
    two = await store.authenticate(second.key)
    assert one is not None
    assert two is not None
    assert one.account_id == two.account_id
    assert first.key != second.key


@pytest.mark.parametrize("account", ["", "   ", "x" * 129])
async def test_create_rejects_bad_account_names(store: KeyStore, account: str) -> None:
    with pytest.raises(ValueError, match="account name"):
        await store.create(account)


async def test_revoked_key_no_longer_authenticates(store: KeyStore) -> None:
    created = await store.create("alice")
    assert await store.revoke(created.key_id) is True
    assert await store.authenticate(created.key) is None
    (info,) = await store.list()
    assert info.revoked_at is not None


async def test_revoke_is_idempotent_and_keeps_first_time(store: KeyStore) -> None:
    created = await store.create("alice")
    await store.revoke(created.key_id)
    (first,) = await store.list()
    assert await store.revoke(created.key_id) is True
    (again,) = await store.list()
    assert again.revoked_at == first.revoked_at


async def test_revoke_unknown_key(store: KeyStore) -> None:
    assert await store.revoke("key_0000000000000000") is False


async def test_list_filters_by_account_and_never_shows_keys(store: KeyStore) -> None:
    alice = await store.create("alice", "one")
    bob = await store.create("bob")
    everything = await store.list()
    assert [info.key_id for info in everything] == [alice.key_id, bob.key_id]
    (only_bob,) = await store.list("bob")
    assert only_bob.account == "bob"
    assert only_bob.last4 == bob.key[-4:]
    assert await store.list("nobody") == []
    assert all(alice.key not in repr(info) for info in everything)


async def test_keys_are_stored_hashed(store: KeyStore, database: Database) -> None:
    created = await store.create("alice")
    async with database.session() as session:
        rows = (await session.execute(text("SELECT * FROM api_keys"))).all()
    dump = repr(rows)
    assert created.key not in dump
    assert created.key[3:] not in dump
    assert hash_key(created.key) in dump


async def test_authenticate_confirms_with_compare_digest(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await store.create("alice")
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return False

    monkeypatch.setattr(secrets, "compare_digest", spy)
    assert await store.authenticate(created.key) is None
    assert calls == [(hash_key(created.key), hash_key(created.key))]


async def test_changes_by_another_process_take_effect_at_once(
    store: KeyStore, database_url: str
) -> None:
    async with await open_database(database_url) as other:
        created = await KeyStore(other).create("alice")
        assert await store.authenticate(created.key) is not None
        await KeyStore(other).revoke(created.key_id)
    assert await store.authenticate(created.key) is None


async def test_ensure_default_key_only_creates_once(store: KeyStore) -> None:
    created = await store.ensure_default_key()
    assert created is not None
    assert created.account == "default"
    caller = await store.authenticate(created.key)
    assert caller is not None
    assert caller.account == "default"
    assert await store.ensure_default_key() is None
    assert len(await store.list()) == 1


async def test_ensure_default_key_skips_when_any_account_exists(store: KeyStore) -> None:
    await store.create("alice")
    assert await store.ensure_default_key() is None
    assert [info.account for info in await store.list()] == ["alice"]
