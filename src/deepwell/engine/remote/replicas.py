"""The replicas of a remote backing model: which one a request goes to, and which are up.

Routing keeps a conversation where its prefix is cached. A request first goes where a
recent request of its namespace went whose prompt its own begins with (the second phase
of a thinking reply, whose prompt is the first phase's plus the reasoning, always finds
the first phase's replica this way, however short its prompt). Otherwise rendezvous
hashing of the namespace and the prompt's first ``route_blocks`` block keys names a
replica, so turns of one conversation, which share those blocks, meet on one replica and
every gateway picks the same one. Load is bounded: a replica already holding more than
``imbalance`` times its share of the requests in flight gives the request to the
least-loaded replica.

A replica is ejected after ``eject_after`` failures in a row (health checks, failed
connections, streams cut) and admitted again by the first health check that passes.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepwell.cache.blocks import block_keys

# How many namespaces, and recent prompts of each, the router remembers.
RECENT_NAMESPACES = 4096
RECENT_PER_NAMESPACE = 8


@dataclass(slots=True)
class Replica:
    """One upstream server and what the router knows of it. Touched on the event loop only."""

    url: str
    healthy: bool = True
    in_flight: int = 0
    failures: int = 0
    requests: int = 0
    errors: int = 0
    ejections: int = 0

    def figures(self) -> dict[str, int]:
        return {
            "healthy": int(self.healthy),
            "in_flight": self.in_flight,
            "requests": self.requests,
            "errors": self.errors,
            "failures_in_a_row": self.failures,
            "ejections": self.ejections,
        }


@dataclass(frozen=True, slots=True)
class _Recent:
    length: int
    digest: bytes
    url: str


@dataclass(slots=True)
class Router:
    """Picks a replica for each request; counts replicas' load, failures and health."""

    replicas: list[Replica]
    block_tokens: int = 64
    route_blocks: int = 1
    imbalance: float = 1.5
    eject_after: int = 3
    _recent: OrderedDict[str, deque[_Recent]] = field(default_factory=OrderedDict)

    @classmethod
    def of(
        cls,
        urls: Sequence[str],
        *,
        block_tokens: int = 64,
        route_blocks: int = 1,
        imbalance: float = 1.5,
        eject_after: int = 3,
    ) -> Router:
        replicas = [Replica(url.rstrip("/")) for url in urls]
        return cls(replicas, block_tokens, route_blocks, imbalance, eject_after)

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if r.healthy]

    def pick(
        self, namespace: str, prompt: Sequence[int], exclude: frozenset[str] = frozenset()
    ) -> Replica | None:
        """The replica for a request (None when no healthy one is left outside
        ``exclude``); it is remembered as where this prompt went."""
        candidates = [r for r in self.healthy() if r.url not in exclude]
        if not candidates:
            return None
        # With one candidate there is nothing to rank (it is remembered all the same).
        chosen = (
            candidates[0] if len(candidates) == 1 else self._choose(namespace, prompt, candidates)
        )
        self._remember(namespace, prompt, chosen.url)
        return chosen

    def _choose(self, namespace: str, prompt: Sequence[int], candidates: list[Replica]) -> Replica:
        """Where this prompt's prefix went before, else the best ranked; the least loaded
        instead when that one is over its share by more than ``imbalance``."""
        preferred = self._sticky(namespace, prompt, candidates)
        ranked = self.ranked(namespace, prompt, candidates)
        if preferred is None:
            preferred = ranked[0]
        total = sum(r.in_flight for r in candidates)
        capacity = math.ceil(self.imbalance * (total + 1) / len(candidates))
        if preferred.in_flight + 1 > capacity:
            preferred = min(ranked, key=lambda r: r.in_flight)
        return preferred

    def ranked(
        self, namespace: str, prompt: Sequence[int], candidates: Sequence[Replica]
    ) -> list[Replica]:
        """``candidates`` by rendezvous score for this namespace and prompt, best first."""
        key = self.route_key(namespace, prompt)
        return sorted(candidates, key=lambda r: _score(key, r.url), reverse=True)

    def route_key(self, namespace: str, prompt: Sequence[int]) -> bytes:
        """The namespace and the prompt's first ``route_blocks`` whole blocks (fewer in a
        shorter prompt), hashed."""
        head = prompt[: self.route_blocks * self.block_tokens]
        keys = block_keys(namespace, "route", head, self.block_tokens)
        return keys[-1] if keys else hashlib.blake2b(namespace.encode(), digest_size=16).digest()

    def started(self, replica: Replica) -> None:
        replica.in_flight += 1
        replica.requests += 1

    def ended(self, replica: Replica) -> None:
        replica.in_flight -= 1

    def failed(self, replica: Replica) -> None:
        """A failure of ``replica``: a health check, a connection or a stream."""
        replica.failures += 1
        replica.errors += 1
        if replica.healthy and replica.failures >= self.eject_after:
            replica.healthy = False
            replica.ejections += 1

    def passed(self, replica: Replica) -> None:
        """A health check of ``replica`` passed: it serves again."""
        replica.failures = 0
        replica.healthy = True

    def _sticky(
        self, namespace: str, prompt: Sequence[int], candidates: Sequence[Replica]
    ) -> Replica | None:
        """Where the longest recent prompt of ``namespace`` that ``prompt`` begins with went."""
        recent = self._recent.get(namespace)
        if not recent:
            return None
        by_url = {r.url: r for r in candidates}
        best: _Recent | None = None
        for entry in recent:
            if entry.url not in by_url or entry.length > len(prompt):
                continue
            if (best is None or entry.length > best.length) and _digest(
                prompt[: entry.length]
            ) == entry.digest:
                best = entry
        return by_url[best.url] if best is not None else None

    def _remember(self, namespace: str, prompt: Sequence[int], url: str) -> None:
        recent = self._recent.pop(namespace, None) or deque(maxlen=RECENT_PER_NAMESPACE)
        recent.append(_Recent(len(prompt), _digest(prompt), url))
        self._recent[namespace] = recent
        while len(self._recent) > RECENT_NAMESPACES:
            self._recent.popitem(last=False)


def _score(key: bytes, url: str) -> int:
    return int.from_bytes(hashlib.blake2b(key + url.encode(), digest_size=8).digest(), "big")


def _digest(tokens: Sequence[int]) -> bytes:
    return hashlib.blake2b(array("i", tokens).tobytes(), digest_size=16).digest()
