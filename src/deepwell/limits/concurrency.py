"""Counting the requests an account has open, against its limits.

A request takes one place in each of its counters (the account on the model, and its
``user_id`` there when that is capped) when it is admitted, and gives them back when its
response has ended, however it ended. ``Limiter`` is the protocol; ``LocalLimiter``
counts in this process; ``limits.redis.RedisLimiter`` counts in Redis, for several
gateways sharing their counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Counter:
    """One limit a request counts against: ``key`` names what is counted."""

    key: str
    allowed: int


@dataclass(frozen=True, slots=True)
class Exceeded:
    """Why a request was refused: with it, ``current`` requests would be open under
    ``counter``, which allows ``counter.allowed``."""

    counter: Counter
    current: int


@dataclass(frozen=True, slots=True)
class Counted:
    """A request counted: ``position`` requests are open under its first counter, this
    one included."""

    position: int


class Limiter(Protocol):
    async def acquire(self, counters: Sequence[Counter]) -> Counted | Exceeded:
        """Count one more request under every counter, or (if one is full) under none."""
        ...

    async def release(self, keys: Sequence[str]) -> None:
        """Give back a place taken by ``acquire`` in each of ``keys``."""
        ...

    async def current(self, key: str) -> int:
        """How many requests are counted under ``key`` now."""
        ...


class LocalLimiter:
    """A ``Limiter`` whose counts live in this process."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    async def acquire(self, counters: Sequence[Counter]) -> Counted | Exceeded:
        for counter in counters:
            current = self._open.get(counter.key, 0)
            if current >= counter.allowed:
                return Exceeded(counter, current + 1)
        for counter in counters:
            self._open[counter.key] = self._open.get(counter.key, 0) + 1
        return Counted(self._open[counters[0].key])

    async def release(self, keys: Sequence[str]) -> None:
        for key in keys:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)

    async def current(self, key: str) -> int:
        return self._open.get(key, 0)


def account_key(account_id: int, model: str) -> str:
    return f"account:{account_id}:{model}"


def user_key(account_id: int, model: str, user_id: str) -> str:
    return f"user:{account_id}:{model}:{user_id}"


def backing_key(backing: str) -> str:
    """The count of every request admitted to ``backing`` (running or queued), on every
    gateway that shares the limiter."""
    return f"backing:{backing}"
