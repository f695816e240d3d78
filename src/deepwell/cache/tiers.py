"""Where saved prefix states live: RAM, then disk. Each tier is byte-bounded, LRU.

An entry is the KV state of one sequence holding a prompt prefix of ``blocks`` whole
blocks (and possibly a few tokens after them), keyed by the key of its last block.
Tiers are thread-safe: the engine thread stores, request handlers look up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deepwell.files import atomic_write

log = logging.getLogger(__name__)

MAGIC = b"DWKV1\n"
_HEADER_LENGTH = struct.Struct("<I")
# What reading a damaged or foreign file can raise; any of them makes the file a miss.
_UNREADABLE = (OSError, ValueError, TypeError, struct.error)


@dataclass(frozen=True, slots=True)
class Entry:
    """A saved state of ``blocks`` whole blocks and then the ``tail`` tokens."""

    key: bytes
    blocks: int
    state: bytes
    tail: tuple[int, ...] = ()


@dataclass(slots=True)
class TierStats:
    entries: int = 0
    bytes: int = 0
    hits: int = 0
    evictions: int = 0
    errors: int = 0


class Tier(Protocol):
    name: str
    stats: TierStats

    def __contains__(self, key: bytes) -> bool: ...

    def get(self, key: bytes) -> Entry | None: ...

    def put(self, entry: Entry) -> None: ...


class RamTier:
    """Entries in memory, least recently used evicted past ``budget`` bytes."""

    name = "ram"

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = TierStats()

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    def get(self, key: bytes) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
            return entry

    def put(self, entry: Entry) -> None:
        if len(entry.state) > self._budget:
            return
        with self._lock:
            old = self._entries.pop(entry.key, None)
            if old is not None:
                self.stats.bytes -= len(old.state)
            self._entries[entry.key] = entry
            self.stats.bytes += len(entry.state)
            while self.stats.bytes > self._budget:
                _, evicted = self._entries.popitem(last=False)
                self.stats.bytes -= len(evicted.state)
                self.stats.evictions += 1
            self.stats.entries = len(self._entries)


class DiskTier:
    """Entries as files under ``folder``, surviving restarts.

    A file holds a header (the fingerprint, the block count, the state's SHA-256) and
    the state. Files are written whole to a temporary name, synced, then renamed, so
    a crash never leaves a file that is trusted half-written (a failed write removes
    its temporary file; one left by a crash is removed on open). A file whose
    fingerprint differs is removed when the tier opens; one whose checksum fails is
    removed when read. Either way it only costs a miss.
    """

    name = "disk"

    def __init__(self, folder: Path, fingerprint: str, budget: int) -> None:
        self._folder = folder
        self._fingerprint = fingerprint
        self._budget = budget
        self._lock = threading.Lock()
        self._sizes: OrderedDict[bytes, int] = OrderedDict()
        self.stats = TierStats()
        folder.mkdir(parents=True, exist_ok=True)
        self._scan()

    def __contains__(self, key: bytes) -> bool:
        return key in self._sizes

    def get(self, key: bytes) -> Entry | None:
        if key not in self._sizes:
            return None
        try:
            entry = self._read(self._path(key))
        except _UNREADABLE as exc:
            log.warning("prefix cache file %s is unusable (%s); removing it", key.hex(), exc)
            self.stats.errors += 1
            self._forget(key)
            return None
        with self._lock:
            if key in self._sizes:
                self._sizes.move_to_end(key)
            self.stats.hits += 1
        return entry

    def put(self, entry: Entry) -> None:
        header = json.dumps(
            {
                "fingerprint": self._fingerprint,
                "blocks": entry.blocks,
                "tail": list(entry.tail),
                "sha256": hashlib.sha256(entry.state).hexdigest(),
            }
        ).encode()
        path = self._path(entry.key)
        with atomic_write(path) as out:
            out.write(MAGIC + _HEADER_LENGTH.pack(len(header)) + header)
            out.write(entry.state)
        size = path.stat().st_size
        with self._lock:
            self.stats.bytes += size - self._sizes.pop(entry.key, 0)
            self._sizes[entry.key] = size
            self.stats.entries = len(self._sizes)
        self._evict()

    def _scan(self) -> None:
        """Index the files of earlier runs; remove leftovers and foreign fingerprints."""
        files = sorted(self._folder.glob("*"), key=lambda p: p.stat().st_mtime)
        for path in files:
            if not path.is_file():
                continue
            key = _key_of(path)
            if key is None or self._header(path).get("fingerprint") != self._fingerprint:
                path.unlink(missing_ok=True)
                continue
            self._sizes[key] = path.stat().st_size
            self.stats.bytes += self._sizes[key]
        self.stats.entries = len(self._sizes)
        self._evict()

    def _header(self, path: Path) -> dict[str, object]:
        try:
            with path.open("rb") as source:
                return _read_header(source.read(len(MAGIC) + _HEADER_LENGTH.size + 4096))[0]
        except _UNREADABLE:
            return {}

    def _read(self, path: Path) -> Entry:
        data = path.read_bytes()
        header, offset = _read_header(data)
        state = data[offset:]
        if header.get("fingerprint") != self._fingerprint:
            raise ValueError("fingerprint mismatch")
        if hashlib.sha256(state).hexdigest() != header.get("sha256"):
            raise ValueError("checksum mismatch")
        blocks, tail = header.get("blocks"), header.get("tail", [])
        if not isinstance(blocks, int) or not isinstance(tail, list):
            raise ValueError("bad header")
        return Entry(bytes.fromhex(path.name), blocks, state, tuple(int(t) for t in tail))

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self.stats.bytes <= self._budget or not self._sizes:
                    return
                key = next(iter(self._sizes))
            self._forget(key)
            self.stats.evictions += 1

    def _forget(self, key: bytes) -> None:
        with self._lock:
            size = self._sizes.pop(key, None)
            if size is not None:
                self.stats.bytes -= size
            self.stats.entries = len(self._sizes)
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: bytes) -> Path:
        return self._folder / key.hex()


def _key_of(path: Path) -> bytes | None:
    try:
        return bytes.fromhex(path.name)
    except ValueError:
        return None


def _read_header(data: bytes) -> tuple[dict[str, object], int]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER_LENGTH.size:
        raise ValueError("not a prefix cache file")
    start = len(MAGIC) + _HEADER_LENGTH.size
    (length,) = _HEADER_LENGTH.unpack_from(data, len(MAGIC))
    header = json.loads(data[start : start + length])
    if not isinstance(header, dict):
        raise ValueError("bad header")
    return header, start + length
