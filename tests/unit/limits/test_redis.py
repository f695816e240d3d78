"""RedisLimiter: counts shared by gateways, all or nothing, leases that expire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from deepwell.errors import Overloaded
from deepwell.limits.concurrency import Counted, Counter, Exceeded, LocalLimiter
from deepwell.limits.redis import RedisLimiter

Gateways = Callable[..., RedisLimiter]


@pytest.fixture
def prefix() -> str:
    """This test's own keys."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
async def gateway(redis_url: str, prefix: str) -> AsyncIterator[Gateways]:
    """Makes limiters on one Redis, as separate gateways would be; closed at the end."""
    made: list[RedisLimiter] = []

    def make(name: str = "a", ttl_s: float = 30.0, *, beat: bool = True) -> RedisLimiter:
        limiter = RedisLimiter(
            Redis.from_url(redis_url), gateway_id=name, ttl_s=ttl_s, prefix=prefix
        )
        if beat:
            limiter.start()
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_counts_up_to_the_limit_then_refuses(gateway: Gateways) -> None:
    limiter = gateway()
    counter = Counter("account:1:m", 2)
    assert await limiter.acquire([counter]) == Counted(1)
    assert await limiter.acquire([counter]) == Counted(2)
    assert await limiter.acquire([counter]) == Exceeded(counter, 3)
    assert await limiter.current("account:1:m") == 2


async def test_release_gives_a_place_back(gateway: Gateways) -> None:
    limiter = gateway()
    counter = Counter("account:1:m", 1)
    assert await limiter.acquire([counter]) == Counted(1)
    await limiter.release(["account:1:m"])
    assert await limiter.current("account:1:m") == 0
    assert await limiter.acquire([counter]) == Counted(1)


async def test_all_or_nothing(gateway: Gateways) -> None:
    limiter = gateway()
    account, user = Counter("account:1:m", 5), Counter("user:1:m:u", 1)
    assert await limiter.acquire([account, user]) == Counted(1)
    assert await limiter.acquire([account, user]) == Exceeded(user, 2)
    assert await limiter.current("account:1:m") == 1


async def test_gateways_share_their_counts(gateway: Gateways) -> None:
    a, b = gateway("a"), gateway("b")
    counter = Counter("account:7:m", 2)
    assert await a.acquire([counter]) == Counted(1)
    assert await a.acquire([counter]) == Counted(2)
    assert await b.acquire([counter]) == Exceeded(counter, 3)
    await a.release(["account:7:m"])
    assert await b.acquire([counter]) == Counted(2)
    assert await a.current("account:7:m") == await b.current("account:7:m") == 2


async def test_a_gateway_gives_back_only_its_own_leases(gateway: Gateways) -> None:
    a, b = gateway("a"), gateway("b")
    counter = Counter("account:1:m", 3)
    assert await a.acquire([counter]) == Counted(1)
    await b.release(["account:1:m"])  # b holds nothing there
    assert await a.current("account:1:m") == 1


async def test_the_leases_of_a_gateway_that_stopped_expire(gateway: Gateways) -> None:
    dead = gateway("dead", ttl_s=0.3, beat=False)
    live = gateway("live", ttl_s=0.3)
    counter = Counter("account:1:m", 1)
    assert await dead.acquire([counter]) == Counted(1)
    assert await live.acquire([counter]) == Exceeded(counter, 2)
    await asyncio.sleep(0.4)
    assert await live.acquire([counter]) == Counted(1)


async def test_the_heartbeat_keeps_running_requests_counted(gateway: Gateways) -> None:
    limiter = gateway(ttl_s=0.3)
    counter = Counter("account:1:m", 1)
    assert await limiter.acquire([counter]) == Counted(1)
    await asyncio.sleep(0.8)
    assert await limiter.current("account:1:m") == 1


async def test_keys_expire_with_their_last_lease(
    gateway: Gateways, redis_url: str, prefix: str
) -> None:
    limiter = gateway(ttl_s=5)
    assert await limiter.acquire([Counter("account:1:m", 1)]) == Counted(1)
    client = Redis.from_url(redis_url)
    try:
        keys = await client.keys(f"{prefix}*")
        assert len(keys) == 1
        assert 0 < await client.pttl(keys[0]) <= 5000
        await limiter.release(["account:1:m"])
        assert await client.zcard(keys[0]) == 0
    finally:
        await client.aclose()


async def test_an_unreachable_redis_is_a_503() -> None:
    limiter = RedisLimiter(Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1))
    try:
        with pytest.raises(Overloaded):
            await limiter.acquire([Counter("account:1:m", 1)])
        with pytest.raises(Overloaded):
            await limiter.current("account:1:m")
    finally:
        await limiter.close()


async def test_the_local_limiter_counts_in_this_process() -> None:
    limiter = LocalLimiter()
    counter = Counter("account:1:m", 1)
    assert await limiter.acquire([counter]) == Counted(1)
    assert await limiter.acquire([counter]) == Exceeded(counter, 2)
    assert await limiter.current("account:1:m") == 1
    await limiter.release(["account:1:m"])
    assert await limiter.current("account:1:m") == 0
