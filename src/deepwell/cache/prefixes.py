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
        """The longest saved prefix among the first ``max_blocks`` keys (may read disk)."""
        for blocks in range(min(len(keys), max_blocks), 0, -1):
            for tier in self._tiers:
                entry = self._get(tier, keys[blocks - 1])
                if entry is not None:
                    if tier is not self._ram:
                        self._ram.put(entry)
                    return Restore(entry.blocks, entry.state, tier.name, entry.tail)
        return None

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
