"""The slot table: which llama.cpp sequence ids hold which tokens' KV, and who may use them.

A *slot* is one llama.cpp sequence id and the tokens whose KV it holds, from position 0.
A slot keeps its tokens after its request ends, so that a later request of the same
namespace whose prompt starts with them can reuse them instead of reading them again.
This module decides which slot a request reuses or takes, and which idle slots give
their cells back when room is needed; it makes no llama.cpp call, so the scheduler
carries out what it decides (clearing a slot's KV, copying a prefix between slots).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Slot:
    """A llama.cpp sequence id and the tokens whose KV it holds, from position 0."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    namespace: str = ""
    busy: bool = False
    last_used: int = 0


@dataclass(frozen=True, slots=True)
class Room:
    """What making room takes: the idle slots to clear, in this order, and whether the
    cells needed are free once they are cleared."""

    evict: tuple[Slot, ...]
    enough: bool


class SlotTable:
    """The slots of one context and the clock that orders them by last use."""

    def __init__(self, count: int) -> None:
        self.slots: tuple[Slot, ...] = tuple(Slot(i) for i in range(count))
        self._clock = itertools.count(1)

    def longest_prefix(self, namespace: str, prompt: Sequence[int]) -> tuple[Slot | None, int]:
        """The slot of ``namespace`` sharing the longest prefix with ``prompt``, and its length.

        At least one prompt token is always left to read, so the step that reads it
        produces the logits of the first new token. Between slots sharing as much, an
        idle one is preferred: it can be taken over instead of copied from.
        """
        best: Slot | None = None
        best_len = 0
        limit = len(prompt) - 1
        for slot in self.slots:
            if slot.namespace != namespace or not slot.tokens:
                continue
            n = common_prefix(slot.tokens, prompt, limit)
            if n > best_len or (n == best_len and best is not None and best.busy and not slot.busy):
                best, best_len = slot, n
        return best, best_len

    def target_slot(self, source: Slot | None, common: int) -> Slot | None:
        """An idle slot for the request: the source itself when idle, else an empty one,
        else the least recently used idle one; None when every slot is busy."""
        if source is not None and not source.busy and common > 0:
            return source
        idle = [s for s in self.slots if not s.busy and s is not source]
        if not idle:
            return None
        return min(idle, key=lambda s: (bool(s.tokens), s.last_used))

    def room_for(self, needed: int, *, capacity: int, keep: tuple[Slot | None, ...]) -> Room:
        """The idle slots to clear, least recently used first, until ``needed`` of the
        ``capacity`` cells are free; the slots in ``keep`` are never cleared.

        When clearing every idle slot is not enough, all of them are still named: the
        caller may go on anyway when nothing else is running.
        """
        idle = sorted(
            (s for s in self.slots if not s.busy and s.tokens and s not in keep),
            key=lambda s: s.last_used,
        )
        used = self.cells_in_use()
        evict: list[Slot] = []
        for slot in idle:
            if used + needed <= capacity:
                break
            evict.append(slot)
            used -= len(slot.tokens)
        return Room(tuple(evict), used + needed <= capacity)

    def least_recent_idle(self) -> Slot | None:
        """The least recently used idle slot holding tokens, if any."""
        idle = [s for s in self.slots if not s.busy and s.tokens]
        return min(idle, key=lambda s: s.last_used) if idle else None

    def occupy(self, slot: Slot, namespace: str) -> None:
        """Give ``slot`` to a request of ``namespace``."""
        slot.namespace = namespace
        slot.busy = True
        slot.last_used = next(self._clock)

    def release(self, slot: Slot) -> None:
        """End ``slot``'s request; it keeps its tokens for later reuse."""
        slot.busy = False
        slot.last_used = next(self._clock)

    def cells_in_use(self) -> int:
        """KV cells held by all slots (shared prefixes counted once per slot: an overestimate)."""
        return sum(len(slot.tokens) for slot in self.slots)

    def busy_count(self) -> int:
        return sum(slot.busy for slot in self.slots)


def common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """How many leading tokens ``a`` and ``b`` share, at most ``limit``."""
    n = min(len(a), len(b), limit)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
