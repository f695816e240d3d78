"""Where saved prefix states live: RAM, then disk. Each tier is byte-bounded, LRU.

An entry is the KV state of one sequence holding a prompt prefix of ``blocks`` whole
blocks (and possibly a few tokens after them), keyed by the key of its last block.
Tiers are thread-safe: the engine thread stores, request handlers look up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from deepwell.files import atomic_write

log = logging.getLogger(__name__)

# The format's name and version: files of any other version are foreign, removed on open.
MAGIC = b"DWKV2\n"
_DIGEST_BYTES = 32
_HEADER_LENGTH = struct.Struct("<I")
_PREAMBLE = len(MAGIC) + _DIGEST_BYTES + _HEADER_LENGTH.size
_MAX_HEADER = 1 << 16
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
    # Lookups that reached this tier (no tier before it had the prefix) and found nothing.
    misses: int = 0
    evictions: int = 0
    errors: int = 0


class Tier(Protocol):
    name: str
    stats: TierStats

    def __contains__(self, key: bytes) -> bool: ...

    def get(self, key: bytes) -> Entry | None: ...

    def put(self, entry: Entry) -> None: ...

    def discard(self, key: bytes) -> None:
        """Forget ``key``'s entry, if there is one (it was found unusable)."""


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

    def discard(self, key: bytes) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self.stats.bytes -= len(entry.state)
            self.stats.entries = len(self._entries)


class DiskTier:
    """Entries as files under ``folder``, surviving restarts. Nothing read is trusted
    before it is verified.

    A file is ``MAGIC``, the SHA-256 of everything after it, the header's length, a JSON
    header (the fingerprint, the entry's own key, its block count and tail, the state's
    length) and the state. A read checks the digest, then that the header names this
    fingerprint and this key and that the state is as long as it says; a file failing
    any check is removed, logged once and counted as an error, and costs a miss. On open,
    temporary files, files of another format and files of another fingerprint or key
    are removed; the others are verified when read.

    Files are owner-only (0600, in a 0700 folder): they hold the token ids of prompts.
    A file is written whole to a temporary name, synced, then renamed (``atomic_write``),
    so a crash never leaves a file that is trusted half-written; a failed write removes
    its temporary file, and one left by a crash is removed on open. Room for a file is
    made before it is written, so the bytes of a write under way count against the
    budget too.
    """

    name = "disk"

    def __init__(self, folder: Path, fingerprint: str, budget: int) -> None:
        self._folder = folder
        self._fingerprint = fingerprint
        self._budget = budget
        self._lock = threading.Lock()
        self._sizes: OrderedDict[bytes, int] = OrderedDict()
        self._writing = 0
        self.stats = TierStats()
        _private_folder(folder)
        self._scan()

    def __contains__(self, key: bytes) -> bool:
        return key in self._sizes

    def get(self, key: bytes) -> Entry | None:
        if key not in self._sizes:
            return None
        try:
            entry = self._read(key)
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
        """Write ``entry``'s file (an entry bigger than the whole budget is not kept)."""
        header = json.dumps(
            {
                "fingerprint": self._fingerprint,
                "key": entry.key.hex(),
                "blocks": entry.blocks,
                "tail": list(entry.tail),
                "state_bytes": len(entry.state),
            }
        ).encode()
        size = _PREAMBLE + len(header) + len(entry.state)
        if size > self._budget:
            return
        body = _HEADER_LENGTH.pack(len(header)) + header
        digest = hashlib.sha256(body)
        digest.update(entry.state)
        self._make_room(size)
        try:
            with atomic_write(self._path(entry.key), mode=0o600) as out:
                out.write(MAGIC + digest.digest() + body)
                out.write(entry.state)
        finally:
            with self._lock:
                self._writing -= size
        with self._lock:
            self.stats.bytes += size - self._sizes.pop(entry.key, 0)
            self._sizes[entry.key] = size
            self.stats.entries = len(self._sizes)

    def discard(self, key: bytes) -> None:
        self._forget(key)

    def _scan(self) -> None:
        """Index the files of earlier runs, oldest first; remove every other file."""
        found: list[tuple[float, bytes, int]] = []
        removed = 0
        for path in self._folder.iterdir():
            try:
                if not path.is_file():
                    continue
                key = _key_of(path)
                if key is None or not self._is_ours(path, key):
                    path.unlink(missing_ok=True)
                    removed += 1
                    continue
                stat = path.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, key, stat.st_size))
        if removed:
            log.info("prefix cache: removed %d stale, foreign or temporary files", removed)
        for _, key, size in sorted(found):
            self._sizes[key] = size
            self.stats.bytes += size
        self.stats.entries = len(self._sizes)
        self._evict()

    def _is_ours(self, path: Path, key: bytes) -> bool:
        """Whether ``path``'s header is of this format, fingerprint and key."""
        try:
            with path.open("rb") as source:
                header, _ = _read_header(source.read(_PREAMBLE + _MAX_HEADER))
        except _UNREADABLE:
            return False
        return header.get("fingerprint") == self._fingerprint and header.get("key") == key.hex()

    def _read(self, key: bytes) -> Entry:
        data = self._path(key).read_bytes()
        header, offset = _read_header(data)
        digest = data[len(MAGIC) : len(MAGIC) + _DIGEST_BYTES]
        if hashlib.sha256(memoryview(data)[len(MAGIC) + _DIGEST_BYTES :]).digest() != digest:
            raise ValueError("checksum mismatch")
        if header.get("fingerprint") != self._fingerprint:
            raise ValueError("fingerprint mismatch")
        if header.get("key") != key.hex():
            raise ValueError("saved under another key")
        blocks, tail, length = header.get("blocks"), header.get("tail"), header.get("state_bytes")
        if not _is_count(blocks) or not isinstance(tail, list) or not all(map(_is_count, tail)):
            raise ValueError("bad header")
        if length != len(data) - offset:
            raise ValueError("state length mismatch")
        return Entry(key, blocks, data[offset:], tuple(tail))

    def _make_room(self, size: int) -> None:
        """Reserve ``size`` bytes for a file about to be written, evicting for them."""
        with self._lock:
            self._writing += size
        self._evict()

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self.stats.bytes + self._writing <= self._budget or not self._sizes:
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
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("prefix cache file %s could not be removed (%s)", key.hex(), exc)

    def _path(self, key: bytes) -> Path:
        return self._folder / key.hex()


def _private_folder(folder: Path) -> None:
    """Make ``folder`` (and any missing parent) readable by its owner only."""
    for path in [*reversed(folder.parents), folder]:
        if not path.exists():
            path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)


def _key_of(path: Path) -> bytes | None:
    try:
        return bytes.fromhex(path.name)
    except ValueError:
        return None


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header at the start of ``data`` and the offset of the state after it."""
    if not data.startswith(MAGIC) or len(data) < _PREAMBLE:
        raise ValueError("not a prefix cache file of this version")
    (length,) = _HEADER_LENGTH.unpack_from(data, _PREAMBLE - _HEADER_LENGTH.size)
    if length > _MAX_HEADER or len(data) < _PREAMBLE + length:
        raise ValueError("truncated header")
    header = json.loads(data[_PREAMBLE : _PREAMBLE + length])
    if not isinstance(header, dict):
        raise ValueError("bad header")
    return header, _PREAMBLE + length
