"""The key cache: callers remembered for a while, revocations forgotten at once, and,
through Redis, heard from other processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deepwell.accounts.keycache import KeyCache
from deepwell.accounts.keys import KeyStore
from deepwell.accounts.revocations import RevocationFeed, announce
from deepwell.store.db import Database, open_database
from deepwell.vocabulary import Caller


class Counting:
    """A key source that counts its reads."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.reads = 0

    async def authenticate(self, key: str) -> Caller | None:
        self.reads += 1
        return await self.store.authenticate(key)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with await open_database(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}") as db:
        yield db


@pytest.fixture
def source(database: Database) -> Counting:
    return Counting(KeyStore(database))


async def test_a_caller_is_remembered_for_the_ttl(source: Counting) -> None:
    created = await source.store.create("alice")
    clock = Clock()
    cache = KeyCache(source, ttl=2.0, clock=clock)
    first = await cache.authenticate(created.key)
    assert first is not None
    assert first.account == "alice"
    assert await cache.authenticate(created.key) == first
    assert source.reads == 1
    clock.now = 2.5
    assert await cache.authenticate(created.key) == first
    assert source.reads == 2


async def test_unknown_keys_are_read_every_time(source: Counting) -> None:
    cache = KeyCache(source, ttl=60.0)
    for _ in range(2):
        assert await cache.authenticate("sk-" + "0" * 32) is None
    assert source.reads == 2


async def test_a_revoked_key_is_forgotten_at_once(source: Counting) -> None:
    created = await source.store.create("alice")
    cache = KeyCache(source, ttl=60.0)
    assert await cache.authenticate(created.key) is not None
    await source.store.revoke(created.key_id)
    assert await cache.authenticate(created.key) is not None  # remembered
    cache.forget(created.key_id)
    assert await cache.authenticate(created.key) is None


async def test_an_untrusted_cache_reads_every_time(source: Counting) -> None:
    created = await source.store.create("alice")
    cache = KeyCache(source, ttl=60.0)
    cache.trusted = False
    for _ in range(3):
        assert await cache.authenticate(created.key) is not None
    assert source.reads == 3


async def test_the_least_recently_used_key_goes_first(source: Counting) -> None:
    keys = [(await source.store.create(f"user{i}")).key for i in range(3)]
    cache = KeyCache(source, ttl=60.0, max_entries=2)
    for key in keys:
        await cache.authenticate(key)
    source.reads = 0
    await cache.authenticate(keys[2])
    await cache.authenticate(keys[0])
    assert source.reads == 1


async def test_a_revocation_announced_on_redis_reaches_every_cache(
    source: Counting, redis_url: str
) -> None:
    created = await source.store.create("alice")
    caches = [KeyCache(source, ttl=60.0) for _ in range(2)]
    feeds = [RevocationFeed(redis_url, cache) for cache in caches]
    for feed in feeds:
        await feed.start()
    try:
        for cache in caches:
            assert cache.trusted
            assert await cache.authenticate(created.key) is not None
        await source.store.revoke(created.key_id)
        assert await announce(redis_url, created.key_id)
        for cache in caches:
            await until_refused(cache, created.key)
    finally:
        for feed in feeds:
            await feed.close()


async def test_without_redis_the_cache_is_not_trusted(source: Counting) -> None:
    cache = KeyCache(source, ttl=60.0)
    feed = RevocationFeed("redis://127.0.0.1:1/0", cache)
    await feed.start()
    try:
        assert not cache.trusted
    finally:
        await feed.close()
    assert not await announce("redis://127.0.0.1:1/0", "key_x")


async def until_refused(cache: KeyCache, key: str) -> None:
    for _ in range(500):
        if await cache.authenticate(key) is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the revocation did not arrive within 5 s")
