"""A ``Limiter`` on Redis, so that several gateways count one account's requests together.

Every place a request takes is a lease: a member of a sorted set per counter key, scored
by the moment it expires (milliseconds, on the Redis server's clock, so the gateways'
clocks never matter). One Lua script drops the expired members of every key, checks
each count against its limit and adds the lease to all keys or to none: atomic across
gateways. While a request runs, its gateway's heartbeat pushes its leases' expiry
forward every third of the TTL; a gateway that dies (``kill -9``, a lost machine) stops
refreshing, and its leases drop out within the TTL, so a crash leaks nothing. Each key
expires with its last lease, so an idle account leaves no key behind.

Each lease is named ``<gateway id>:<random>``; ``release`` gives back one of this
gateway's leases under each key, as the ``Limiter`` protocol counts places, not
requests. The keys of one request must live on one Redis node (no Redis Cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from deepwell.errors import Overloaded
from deepwell.limits.concurrency import Counted, Counter, Exceeded

log = logging.getLogger(__name__)

PREFIX = "deepwell:concurrency:"
DEFAULT_TTL_S = 30.0

# The server's clock in milliseconds, as a Lua local ``now``.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The key expires with its latest lease.
_EXPIRE_WITH_LAST = """
local function expire_with_last(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', key, last[2]) end
end
"""

# KEYS: the counters' keys; ARGV: ttl_ms, lease, then each key's limit.
# Returns {0, count} when the lease was added under every key (count: the first key's,
# this lease included), else {i, count} for the first full key (1-based) and the count it
# already holds.
_ACQUIRE = (
    _NOW
    + _EXPIRE_WITH_LAST
    + """
local expires = string.format('%d', now + tonumber(ARGV[1]))
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local count = redis.call('ZCARD', key)
  if count >= tonumber(ARGV[i + 2]) then
    return {i, count}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expires, ARGV[2])
  expire_with_last(key)
end
return {0, redis.call('ZCARD', KEYS[1])}
"""
)

# KEYS: keys, one per lease (repeated as needed); ARGV: ttl_ms, then KEYS[i]'s lease.
# Only leases still present are refreshed: one released meanwhile stays released.
_REFRESH = (
    _NOW
    + _EXPIRE_WITH_LAST
    + """
local expires = string.format('%d', now + tonumber(ARGV[1]))
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expires, ARGV[i + 1])
  expire_with_last(key)
end
return #KEYS
"""
)

_CURRENT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)


class RedisLimiter:
    """A ``Limiter`` whose counts live in Redis, shared by every gateway using it.

    ``start`` begins the heartbeat that keeps this gateway's leases alive; ``close``
    stops it (leases still held then expire within ``ttl_s``) and closes the client.
    All methods run on one event loop.
    """

    def __init__(
        self,
        client: Redis,
        *,
        gateway_id: str = "default",
        ttl_s: float = DEFAULT_TTL_S,
        prefix: str = PREFIX,
    ) -> None:
        self._client = client
        self._gateway = gateway_id
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._refresh = client.register_script(_REFRESH)
        self._current = client.register_script(_CURRENT)
        self._held: dict[str, list[str]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._forgetting: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, url: str, *, gateway_id: str, ttl_s: float) -> RedisLimiter:
        """A started limiter on the Redis at ``url`` (which must answer now)."""
        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        limiter = cls(client, gateway_id=gateway_id, ttl_s=ttl_s)
        limiter.start()
        return limiter

    def start(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="deepwell-lease-heartbeat")

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._forgetting:
            await asyncio.gather(*self._forgetting, return_exceptions=True)
        await self._client.aclose()

    async def acquire(self, counters: Sequence[Counter]) -> Counted | Exceeded:
        lease = f"{self._gateway}:{uuid.uuid4().hex}"
        keys = [self._prefix + counter.key for counter in counters]
        args = [self._ttl_ms, lease, *(counter.allowed for counter in counters)]
        try:
            full, count = await self._call(self._acquire, keys, args)
        except BaseException:
            # Cancelled or failed after the script may have run: take the lease back.
            task = asyncio.ensure_future(self._forget(keys, lease))
            self._forgetting.add(task)
            task.add_done_callback(self._forgetting.discard)
            raise
        if full:
            return Exceeded(counters[full - 1], count + 1)
        for counter in counters:
            self._held.setdefault(counter.key, []).append(lease)
        return Counted(count)

    async def release(self, keys: Sequence[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            leases = self._held.get(key)
            if not leases:
                continue
            pipe.zrem(self._prefix + key, leases.pop())
            if not leases:
                del self._held[key]
        if len(pipe):
            try:
                await pipe.execute()
            except RedisError as exc:
                raise _unavailable(exc) from exc

    async def current(self, key: str) -> int:
        count: int = await self._call(self._current, [self._prefix + key], [])
        return count

    async def refresh(self) -> int:
        """Push the expiry of every lease this gateway holds a TTL forward; how many."""
        pairs = [(key, lease) for key, leases in self._held.items() for lease in leases]
        if not pairs:
            return 0
        keys = [self._prefix + key for key, _ in pairs]
        refreshed: int = await self._call(
            self._refresh, keys, [self._ttl_ms, *(lease for _, lease in pairs)]
        )
        return refreshed

    async def _beat(self) -> None:
        interval = self._ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Overloaded as exc:
                log.warning("refreshing concurrency leases failed: %s", exc.__cause__)

    async def _forget(self, keys: list[str], lease: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.zrem(key, lease)
        with contextlib.suppress(RedisError):
            await pipe.execute()

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: RedisError) -> Overloaded:
    log.warning("the concurrency limiter's Redis failed: %s", exc)
    return Overloaded("The server cannot check concurrency limits right now. Please retry.")
