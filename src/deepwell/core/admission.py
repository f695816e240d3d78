"""Admitting a request against its account's concurrency limits (429).

A request counts against its account on its public model (and against its ``user_id``
there, when ``limits.concurrency.per_user`` is set) from admission until its response
has ended. The limit comes from ``limits.policy``: the account's own override, else the
configuration; with billing on, it is lowered for a low balance once the hold shows
what the account has left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from deepwell.billing.ledger import Held
from deepwell.errors import Overloaded, RateLimited
from deepwell.limits import policy
from deepwell.limits.concurrency import Counter, Exceeded, Limiter, account_key, user_key
from deepwell.settings import Settings

OVERRIDES_TTL_S = 5.0
"""How long overrides set from the CLI may take to reach a running server."""


class OverrideSource(Protocol):
    async def all(self) -> dict[int, dict[str, int]]:
        """Every account's overrides: account id → public model id (or ``*``) → limit."""
        ...


class Overrides:
    """Per-account overrides, read from ``source`` at most once every ``ttl`` seconds."""

    def __init__(self, source: OverrideSource, ttl: float = OVERRIDES_TTL_S) -> None:
        self._source = source
        self._ttl = ttl
        self._loaded_at = -ttl
        self._all: dict[int, dict[str, int]] = {}

    async def of(self, account_id: int) -> Mapping[str, int]:
        if time.monotonic() - self._loaded_at >= self._ttl:
            self._all = await self._source.all()
            self._loaded_at = time.monotonic()
        return self._all.get(account_id, {})


@dataclass(frozen=True, slots=True)
class Entry:
    """A request counted under ``counters``; ``counters[0]`` is its account's, where it
    was request number ``position`` open when it was counted."""

    counters: tuple[Counter, ...]
    position: int = 1

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(counter.key for counter in self.counters)


class Admission:
    def __init__(
        self, settings: Settings, limiter: Limiter, overrides: Overrides | None = None
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._overrides = overrides

    async def enter(
        self, account_id: int, model: str, user_id: str | None, shared: Counter | None = None
    ) -> Entry:
        """Count a request of ``account_id`` on ``model``, or raise ``RateLimited``; and
        under ``shared`` (the bound of its backing model's queue on every gateway that
        shares the limiter), or raise ``Overloaded``."""
        found = await self._overrides.of(account_id) if self._overrides is not None else {}
        allowed = policy.configured(self._settings, model, found)
        counters = [Counter(account_key(account_id, model), allowed)]
        per_user = self._settings.limits.concurrency.per_user
        if per_user is not None:
            counters.append(Counter(user_key(account_id, model, user_id or ""), per_user))
        if shared is not None:
            counters.append(shared)
        counted = await self._limiter.acquire(counters)
        if isinstance(counted, Exceeded) and counted.counter is shared:
            raise Overloaded("Server overloaded")
        if isinstance(counted, Exceeded):
            raise _rate_limited(counted, user_id, counters[0])
        return Entry(tuple(counters), counted.position)

    async def check_balance(self, entry: Entry, held: Held) -> None:
        """Raise ``RateLimited`` if ``entry``'s account has more requests open than the
        balance its hold left allows (the caller then gives the hold back and leaves)."""
        account = entry.counters[0]
        lowered = policy.for_balance(self._settings, account.allowed, held.available)
        # Measured by the place the request took, not by the count now: requests that
        # arrive together are counted together, and judging each by the count now would
        # refuse them all. Its place is the better of two: among its account's requests when
        # it was counted, and among its account's holds when it placed its own (holds are
        # placed one after the other, each seeing what the earlier ones left, so the first
        # hold of a burst always goes through; but a gateway that died leaves its holds
        # until it starts again, which only the first measure forgets).
        position = entry.position
        if held.holders is not None:
            position = min(position, held.holders)
        if position > lowered:
            raise RateLimited(
                f"Your current concurrency is {position}, which exceeds your concurrency "
                f"limit of {lowered} based on your remaining balance. Please top up your "
                "balance to restore your concurrency."
            )

    async def leave(self, entry: Entry) -> None:
        await self._limiter.release(entry.keys)


def _rate_limited(exceeded: Exceeded, user_id: str | None, account: Counter) -> RateLimited:
    counter = exceeded.counter
    whose = "" if counter is account else f" for user_id {user_id or '(none)'}"
    return RateLimited(
        f"Your current concurrency{whose} is {exceeded.current}, which exceeds your "
        f"concurrency limit of {counter.allowed}. Please wait for a request to finish, "
        "or ask for a higher limit."
    )
