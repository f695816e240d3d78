"""The prefix cache behind the engine: lookups across tiers, stores written behind.

A fault in any tier costs a miss and a log line, never a request.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from deepwell.cache.blocks import block_keys
from deepwell.cache.tiers import DiskTier, Entry, RamTier, Tier
from deepwell.settings import CacheSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Restore:
    """A saved state holding the first ``blocks`` blocks of a prompt, then ``tail``
    (tokens that may or may not continue the prompt at hand)."""

    blocks: int
    state: bytes
    tier: str
    tail: tuple[int, ...] = ()


def save_point(before: int, after: int, total: int, interval: int) -> int | None:
    """Where to save a prompt of ``total`` tokens whose reading just went from ``before``
    to ``after`` tokens read: at its end, or at the last point it crossed among
    ``interval`` times 1, 2, 4, 8 ... that is at most half the prompt; else nowhere.

    The points inside a prompt leave a prefix of a long prompt that is cut short; since
    they double and stop at half the prompt, their states add up to less than the whole
    prompt's state, so one prompt writes less than twice its own state (not a state
    every ``interval`` tokens, which grows with the square of its length).
    """
    if after >= total:
        return total
    point = None
    mark = interval
    while mark <= min(after, total // 2):
        if mark > before:
            point = mark
        mark *= 2
    return point


class PrefixCache:
    """Saved prefix states in RAM and, when ``folder`` is given, on disk.

    ``store`` returns at once: the RAM tier takes the entry, and a writer thread
    puts it on disk. ``close`` waits for pending writes.
    """

    def __init__(self, settings: CacheSettings, fingerprint: str, folder: Path | None) -> None:
        self.block_tokens = settings.block_tokens
        self.store_interval = settings.store_interval
        self.fingerprint = fingerprint
        self._ram = RamTier(settings.ram_bytes)
        self._disk = self._open_disk(folder, settings.disk_bytes)
        self._writes: queue.Queue[Entry | None] = queue.Queue(maxsize=64)
        self._writer = threading.Thread(
            target=self._write_behind, name="deepwell-cache-writer", daemon=True
        )
        self._writer.start()

    def _open_disk(self, folder: Path | None, budget: int) -> DiskTier | None:
        if folder is None or budget <= 0:
            return None
        try:
            return DiskTier(folder, self.fingerprint, budget)
        except OSError as exc:
            log.warning("prefix cache: disk tier disabled (%s)", exc)
            return None

    @property
    def _tiers(self) -> list[Tier]:
        return [self._ram] if self._disk is None else [self._ram, self._disk]

    def keys(self, namespace: str, tokens: Sequence[int]) -> list[bytes]:
        return block_keys(namespace, self.fingerprint, tokens, self.block_tokens)

    def contains(self, key: bytes) -> bool:
        return any(key in tier for tier in self._tiers)

    def lookup(self, keys: Sequence[bytes], max_blocks: int) -> Restore | None:
        """The longest saved prefix among the first ``max_blocks`` keys (may read disk).

        An entry is used only if it is what its key names: ``blocks`` whole blocks, a tail
        shorter than a block, a state. Any other is removed from every tier and logged
        (once: it is gone), and the search goes on to shorter prefixes.
        """
        for blocks in range(min(len(keys), max_blocks), 0, -1):
            key = keys[blocks - 1]
            for tier in self._tiers:
                entry = self._get(tier, key)
                if entry is None:
                    continue
                if not self._names(entry, key, blocks):
                    log.warning(
                        "prefix cache: %s entry %s is malformed; removing it", tier.name, key.hex()
                    )
                    tier.stats.errors += 1
                    self.discard(key)
                    break
                if tier is not self._ram:
                    self._ram.put(entry)
                self._missed(before=tier)
                return Restore(entry.blocks, entry.state, tier.name, entry.tail)
        self.note_miss()
        return None

    def note_miss(self) -> None:
        """A prompt none of the tiers has any prefix of."""
        self._missed(before=None)

    def _missed(self, before: Tier | None) -> None:
        """Count a miss on each tier a lookup passed on its way to ``before`` (None: all)."""
        for tier in self._tiers:
            if tier is before:
                return
            tier.stats.misses += 1

    def discard(self, key: bytes) -> None:
        """Remove ``key``'s entry from every tier: it could not be used (a state that did
        not load, say), so no later request should find it again."""
        for tier in self._tiers:
            try:
                tier.discard(key)
            except Exception:
                log.exception("prefix cache: %s tier failed to discard an entry", tier.name)
                tier.stats.errors += 1

    def store(self, entry: Entry) -> None:
        self._ram.put(entry)
        if self._disk is not None and entry.key not in self._disk:
            try:
                self._writes.put_nowait(entry)
            except queue.Full:
                log.info("prefix cache: disk writer busy, entry kept in RAM only")

    def stats(self) -> dict[str, dict[str, int]]:
        return {tier.name: asdict(tier.stats) for tier in self._tiers}

    def close(self) -> None:
        self._writes.put(None)
        self._writer.join()

    def _names(self, entry: Entry, key: bytes, blocks: int) -> bool:
        return (
            entry.key == key
            and entry.blocks == blocks
            and len(entry.tail) < self.block_tokens
            and len(entry.state) > 0
        )

    def _get(self, tier: Tier, key: bytes) -> Entry | None:
        if key not in tier:
            return None
        try:
            return tier.get(key)
        except Exception:
            log.exception("prefix cache: %s tier failed on lookup", tier.name)
            tier.stats.errors += 1
            return None

    def _write_behind(self) -> None:
        while (entry := self._writes.get()) is not None:
            assert self._disk is not None
            try:
                self._disk.put(entry)
            except Exception:
                log.exception("prefix cache: disk write failed")
                self._disk.stats.errors += 1
