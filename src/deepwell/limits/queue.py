"""The server queue in front of one engine: bounded, and fair across accounts.

At most ``capacity`` requests run on the engine at once (its sequences); the others
wait here, up to ``max_requests`` of them and ``max_prompt_tokens`` of their prompts.
Past either bound a request is refused at once (503) instead of joining a queue it
would wait in for minutes. When a place frees up, it goes to the waiting account
that has the fewest requests running, the one served least recently among equals, so
one account's burst cannot starve another account's single request.

Nor can a burst take every place the moment it frees up: an account that was active
within ``reserve_s`` keeps up to its fair share (the places divided among the active
accounts, at most the most it wanted lately) reserved for a while, so a client that
sends its next request right after the last one ended finds its place still there. An
account beyond its share runs only on places nobody else has a claim to; alone, an
account may use every place.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

RESERVE_S = 2.0
"""How long an account's fair share stays reserved for it after its last request."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    waiting: int
    running: int
    waiting_tokens: int
    capacity: int


@dataclass(eq=False, slots=True)
class Place:
    """One request's place: ``waiting`` until the queue starts it, then ``running``
    until it leaves. ``entered`` is when it joined (``time.monotonic``)."""

    account: int
    tokens: int
    state: Literal["waiting", "running", "left"] = "waiting"
    entered: float = field(default_factory=time.monotonic)
    _turn: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    async def wait(self, within: float) -> bool:
        """Wait at most ``within`` seconds for this place's turn (or a ``wake``); True
        once it is running."""
        if not self._turn.is_set():
            try:
                async with asyncio.timeout(within):
                    await self._turn.wait()
            except TimeoutError:
                pass
        return self.running

    def wake(self) -> None:
        """End a ``wait`` now, whether or not the place is running."""
        self._turn.set()


@dataclass(slots=True)
class _Recent:
    """When an account last entered or left, and the most requests it had at once since
    it became active."""

    seen: float
    peak: int


class FairQueue:
    """``shared``: the engine behind this queue serves other gateways too (a remote
    one), so the bound on its requests is counted across gateways (see
    ``core.gateway``)."""

    def __init__(
        self,
        capacity: int,
        *,
        max_requests: int,
        max_prompt_tokens: int,
        reserve_s: float = RESERVE_S,
        shared: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self._max_requests = max_requests
        self._max_tokens = max_prompt_tokens
        self._reserve_s = reserve_s
        self.shared = shared
        self._clock = clock
        self._waiting: dict[int, deque[Place]] = {}
        self._running: dict[int, int] = {}
        self._served: dict[int, int] = {}
        self._recent: dict[int, _Recent] = {}
        self._order = itertools.count()
        self._n_waiting = 0
        self._waiting_tokens = 0
        self._n_running = 0
        self._timer: asyncio.TimerHandle | None = None

    def enter(self, account: int, tokens: int) -> Place | None:
        """A place for a request of ``account`` with a prompt of ``tokens``: running at
        once if there is a place nobody else has a claim to, else waiting; None if the
        queue is full."""
        place = Place(account, tokens)
        self._seen(account, extra=1)
        if not self._waiting and self._may_run(account):
            self._run(place)
            return place
        if self._n_waiting >= self._max_requests or (
            self._waiting_tokens + tokens > self._max_tokens
        ):
            return None
        self._waiting.setdefault(account, deque()).append(place)
        self._n_waiting += 1
        self._waiting_tokens += tokens
        self._dispatch()
        return place

    def leave(self, place: Place) -> None:
        """``place``'s request has ended (or gave up waiting): free what it took."""
        if place.state == "running":
            self._n_running -= 1
            left = self._running[place.account] - 1
            if left:
                self._running[place.account] = left
            else:
                del self._running[place.account]
        elif place.state == "waiting":
            queue = self._waiting[place.account]
            queue.remove(place)
            if not queue:
                del self._waiting[place.account]
            self._n_waiting -= 1
            self._waiting_tokens -= place.tokens
        place.state = "left"
        self._seen(place.account)
        self._dispatch()

    def stats(self) -> QueueStats:
        return QueueStats(self._n_waiting, self._n_running, self._waiting_tokens, self.capacity)

    def _dispatch(self) -> None:
        while self._n_running < self.capacity and self._waiting:
            order = sorted(
                self._waiting, key=lambda a: (self._running.get(a, 0), self._served.get(a, -1))
            )
            account = next((a for a in order if self._may_run(a)), None)
            if account is None:
                self._retry_later()
                return
            queue = self._waiting[account]
            place = queue.popleft()
            if not queue:
                del self._waiting[account]
            self._n_waiting -= 1
            self._waiting_tokens -= place.tokens
            self._run(place)

    def _seen(self, account: int, extra: int = 0) -> None:
        """Note ``account``'s activity; ``extra`` requests about to join it."""
        now = self._clock()
        demand = self._running.get(account, 0) + len(self._waiting.get(account, ())) + extra
        recent = self._recent.get(account)
        if recent is None or now - recent.seen > self._reserve_s:
            self._recent[account] = _Recent(now, demand)
        else:
            recent.seen = now
            recent.peak = max(recent.peak, demand)

    def _active(self, now: float) -> list[int]:
        """Accounts with requests here, or seen within ``reserve_s``."""
        expired = [a for a, r in self._recent.items() if now - r.seen > self._reserve_s]
        for account in expired:
            if account not in self._running and account not in self._waiting:
                del self._recent[account]
        return list(self._recent)

    def _may_run(self, account: int) -> bool:
        """Whether a request of ``account`` may take a free place now: one of the places
        nobody else has a claim to, or one within its own fair share."""
        free = self.capacity - self._n_running
        if free <= 0:
            return False
        now = self._clock()
        active = self._active(now)
        share = max(1, self.capacity // max(1, len(active)))
        if self._running.get(account, 0) < share:
            return True
        claimed = sum(
            max(0, min(share, self._recent[other].peak) - self._running.get(other, 0))
            for other in active
            if other != account and now - self._recent[other].seen <= self._reserve_s
        )
        return free > claimed

    def _retry_later(self) -> None:
        """Places are free but reserved: look again once the first reservation lapses."""
        now = self._clock()
        lapses = [r.seen + self._reserve_s for r in self._recent.values()]
        pending = [at for at in lapses if at >= now]
        if self._timer is not None or not pending:
            return
        with contextlib.suppress(RuntimeError):  # no event loop: nobody waits on us
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(min(pending) - now + 0.01, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _run(self, place: Place) -> None:
        place.state = "running"
        self._n_running += 1
        self._running[place.account] = self._running.get(place.account, 0) + 1
        self._served[place.account] = next(self._order)
        place.wake()
