"""The server queue in front of one engine: bounded, and fair across accounts.

At most ``capacity`` requests run on the engine at once (its sequences); the others
wait here, up to ``max_requests`` of them and ``max_prompt_tokens`` of their prompts.
Past either bound a request is refused at once (503) instead of joining a queue it
would wait in for minutes. When a place frees up, it goes to the waiting account
that has the fewest requests running, the one served least recently among equals, so
one account's burst cannot starve another account's single request.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal


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


class FairQueue:
    def __init__(self, capacity: int, *, max_requests: int, max_prompt_tokens: int) -> None:
        self.capacity = capacity
        self._max_requests = max_requests
        self._max_tokens = max_prompt_tokens
        self._waiting: dict[int, deque[Place]] = {}
        self._running: dict[int, int] = {}
        self._served: dict[int, int] = {}
        self._order = itertools.count()
        self._n_waiting = 0
        self._waiting_tokens = 0
        self._n_running = 0

    def enter(self, account: int, tokens: int) -> Place | None:
        """A place for a request of ``account`` with a prompt of ``tokens``: running at
        once if the engine has room and nobody waits, else waiting; None if the queue
        is full."""
        place = Place(account, tokens)
        if self._n_running < self.capacity and self._n_waiting == 0:
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
        self._dispatch()

    def stats(self) -> QueueStats:
        return QueueStats(self._n_waiting, self._n_running, self._waiting_tokens, self.capacity)

    def _dispatch(self) -> None:
        while self._n_running < self.capacity and self._waiting:
            account = min(
                self._waiting, key=lambda a: (self._running.get(a, 0), self._served.get(a, -1))
            )
            queue = self._waiting[account]
            place = queue.popleft()
            if not queue:
                del self._waiting[account]
            self._n_waiting -= 1
            self._waiting_tokens -= place.tokens
            self._run(place)

    def _run(self, place: Place) -> None:
        place.state = "running"
        self._n_running += 1
        self._running[place.account] = self._running.get(place.account, 0) + 1
        self._served[place.account] = next(self._order)
        place.wake()
