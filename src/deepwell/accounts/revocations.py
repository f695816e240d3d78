"""Revoked keys announced to every gateway on one Redis (channel ``deepwell:keys:revoked``),
so that their key caches forget them at once.

``announce`` is what a revoking process (the CLI, the admin API) calls after the
database says the key is revoked. ``RevocationFeed`` is what a server runs: subscribed
to the channel, it drops each announced key from its ``KeyCache``; while it is not
subscribed (Redis unreachable) it marks the cache untrusted, so that every request
reads the database until the subscription is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from deepwell.accounts.keycache import KeyCache

log = logging.getLogger(__name__)

CHANNEL = "deepwell:keys:revoked"
_UNCACHED = "keys are read from the database on every request until it is back"
RETRY_S = 1.0
"""The pause before subscribing again after Redis failed."""


async def announce(redis_url: str | None, key_id: str) -> bool:
    """Tell the gateways on ``redis_url`` that ``key_id`` is revoked; False (logged) if
    Redis could not be told, True also when there is no Redis to tell."""
    if redis_url is None:
        return True
    client = Redis.from_url(redis_url)
    try:
        await client.publish(CHANNEL, key_id)
    except (RedisError, OSError) as exc:
        log.warning("could not announce the revocation of %s on Redis: %s", key_id, exc)
        return False
    finally:
        await client.aclose()
    return True


class RevocationFeed:
    """Keeps ``cache`` in step with the revocations announced on ``redis_url``."""

    def __init__(self, redis_url: str, cache: KeyCache) -> None:
        self._client = Redis.from_url(redis_url)
        self._cache = cache
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe (the cache is trusted once this returns, if Redis answered), then
        listen on a task of its own."""
        self._cache.trusted = False
        pubsub = await self._subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run(pubsub))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _subscribe(self) -> PubSub | None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
        except (RedisError, OSError) as exc:
            log.warning("key revocations: cannot subscribe on Redis (%s); %s", exc, _UNCACHED)
            await _close(pubsub)
            return None
        self._cache.clear()
        self._cache.trusted = True
        return pubsub

    async def _run(self, pubsub: PubSub | None) -> None:
        while True:
            if pubsub is None:
                await asyncio.sleep(RETRY_S)
                pubsub = await self._subscribe()
                continue
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._cache.forget(_text(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("key revocations: lost Redis (%s); %s", exc, _UNCACHED)
            self._cache.trusted = False
            with contextlib.suppress(RedisError, OSError):
                await _close(pubsub)
            pubsub = None


async def _close(pubsub: PubSub) -> None:
    await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data
