"""Authenticated keys remembered for a few seconds, so that a busy client costs a
dictionary lookup per request instead of a database read.

Only keys that authenticated are remembered (a key created a moment ago works at once,
and an unknown key is read every time). A revocation is seen at once by the server
that made it (``forget``) and, through the Redis channel of ``revocations``, by every
gateway on that Redis; a key revoked elsewhere without Redis (the CLI on a lone server)
is refused within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from deepwell.accounts.keys import hash_key
from deepwell.vocabulary import Caller

MAX_ENTRIES = 10_000
"""Keys remembered at most; the least recently used goes first."""


class KeySource(Protocol):
    async def authenticate(self, key: str) -> Caller | None: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    caller: Caller
    until: float


class KeyCache:
    """``authenticate`` over ``source``, remembering each caller for ``ttl`` seconds
    (0: never). ``trusted`` says whether remembering is safe right now (False while
    the revocation feed is down); when it is not, every call reads ``source``."""

    def __init__(
        self,
        source: KeySource,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.trusted = True

    async def authenticate(self, key: str) -> Caller | None:
        digest = hash_key(key)
        entry = self._entries.get(digest)
        now = self._clock()
        if entry is not None and entry.until > now and self.trusted:
            self._entries.move_to_end(digest)
            return entry.caller
        caller = await self._source.authenticate(key)
        if caller is None:
            self._entries.pop(digest, None)
        elif self._ttl > 0 and self.trusted:
            self._entries[digest] = _Entry(caller, now + self._ttl)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return caller

    def forget(self, key_id: str) -> None:
        """Drop the key ``key_id`` (revoked): its next request is read afresh."""
        for digest, entry in list(self._entries.items()):
            if entry.caller.key_id == key_id:
                del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()
