"""PrefixCache: longest-prefix lookups across RAM and disk, writes behind, faults as misses."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deepwell.cache.blocks import block_keys
from deepwell.cache.prefixes import PrefixCache, Restore, save_point
from deepwell.cache.tiers import MAGIC, Entry
from deepwell.settings import CacheSettings

FP = "model-fingerprint"
BLOCK = 16
TOKENS = list(range(1000, 1000 + 4 * BLOCK))  # four whole blocks
STAT_FIELDS = {"entries", "bytes", "hits", "misses", "evictions", "errors"}

MakeCache = Callable[..., PrefixCache]


@pytest.fixture
def make_cache() -> Iterator[MakeCache]:
    """Builds PrefixCaches and closes every one of them (each owns a writer thread)."""
    caches: list[PrefixCache] = []

    def make(
        folder: Path | None,
        *,
        ram_bytes: int = 1 << 20,
        disk_bytes: int = 1 << 20,
        fingerprint: str = FP,
    ) -> PrefixCache:
        settings = CacheSettings(block_tokens=BLOCK, ram_bytes=ram_bytes, disk_bytes=disk_bytes)
        cache = PrefixCache(settings, fingerprint, folder)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def _state(blocks: int, tag: int = 0) -> bytes:
    return bytes([blocks, tag]) * 8


def _entry(keys: list[bytes], blocks: int, tag: int = 0) -> Entry:
    return Entry(keys[blocks - 1], blocks, _state(blocks, tag))


# --- keys and settings -------------------------------------------------------------------


def test_keys_follow_settings_and_fingerprint(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path)
    assert cache.block_tokens == BLOCK
    assert cache.store_interval == CacheSettings().store_interval
    assert cache.fingerprint == FP
    keys = cache.keys("alice", TOKENS)
    assert keys == block_keys("alice", FP, TOKENS, BLOCK)
    assert len(keys) == 4
    assert cache.keys("alice", TOKENS[: BLOCK + 3]) == keys[:1]
    assert cache.keys("alice", TOKENS) != cache.keys("bob", TOKENS)


# --- lookups -----------------------------------------------------------------------------


def test_lookup_on_empty_cache_misses(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path)
    keys = cache.keys("alice", TOKENS)
    assert cache.lookup(keys, 4) is None
    assert cache.lookup([], 4) is None
    assert not cache.contains(keys[0])


def test_lookup_returns_longest_saved_prefix_within_max_blocks(
    tmp_path: Path, make_cache: MakeCache
) -> None:
    cache = make_cache(tmp_path)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 1))
    cache.store(_entry(keys, 3))

    assert cache.lookup(keys, 4) == Restore(3, _state(3), "ram")
    assert cache.lookup(keys, 99) == Restore(3, _state(3), "ram")
    assert cache.lookup(keys, 3) == Restore(3, _state(3), "ram")
    assert cache.lookup(keys, 2) == Restore(1, _state(1), "ram")
    assert cache.lookup(keys, 1) == Restore(1, _state(1), "ram")
    assert cache.lookup(keys, 0) is None
    assert cache.lookup(keys[:2], 4) == Restore(1, _state(1), "ram")
    assert cache.contains(keys[0])
    assert not cache.contains(keys[1])
    assert cache.contains(keys[2])


def test_lookup_of_diverging_prompt_stops_at_shared_blocks(
    tmp_path: Path, make_cache: MakeCache
) -> None:
    cache = make_cache(tmp_path)
    keys = cache.keys("alice", TOKENS)
    for blocks in (1, 2, 3, 4):
        cache.store(_entry(keys, blocks))
    other = [*TOKENS[: 2 * BLOCK], *range(5000, 5000 + 2 * BLOCK)]
    restore = cache.lookup(cache.keys("alice", other), 4)
    assert restore == Restore(2, _state(2), "ram")


def test_lookup_is_scoped_by_namespace(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path)
    cache.store(_entry(cache.keys("alice", TOKENS), 4))
    assert cache.lookup(cache.keys("bob", TOKENS), 4) is None
    assert cache.lookup(cache.keys("alice", TOKENS), 4) is not None


def test_lookup_is_scoped_by_fingerprint(tmp_path: Path, make_cache: MakeCache) -> None:
    first = make_cache(tmp_path, fingerprint="model-a")
    first.store(_entry(first.keys("alice", TOKENS), 4))
    first.close()
    second = make_cache(tmp_path, fingerprint="model-b")
    assert second.lookup(second.keys("alice", TOKENS), 4) is None
    assert second.stats()["disk"]["entries"] == 0


# --- RAM and disk ------------------------------------------------------------------------


def test_store_then_close_reaches_disk_for_next_cache(
    tmp_path: Path, make_cache: MakeCache
) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    for blocks in (1, 2, 3, 4):
        first.store(_entry(keys, blocks))
    first.close()
    assert first.stats()["disk"]["entries"] == 4

    second = make_cache(tmp_path)
    assert second.stats()["ram"]["entries"] == 0
    assert second.stats()["disk"]["entries"] == 4
    assert all(second.contains(key) for key in keys)
    assert second.lookup(keys, 4) == Restore(4, _state(4), "disk")
    assert second.lookup(keys, 2) == Restore(2, _state(2), "disk")


def test_disk_hit_is_promoted_to_ram_and_ram_is_preferred(
    tmp_path: Path, make_cache: MakeCache
) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 4))
    first.close()

    second = make_cache(tmp_path)
    assert second.lookup(keys, 4) == Restore(4, _state(4), "disk")
    assert second.stats()["ram"]["entries"] == 1
    assert second.lookup(keys, 4) == Restore(4, _state(4), "ram")
    assert second.lookup(keys, 4) == Restore(4, _state(4), "ram")
    stats = second.stats()
    assert stats["disk"]["hits"] == 1
    assert stats["ram"]["hits"] == 2


def test_promotion_respects_ram_budget(tmp_path: Path, make_cache: MakeCache) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 4))
    first.close()

    second = make_cache(tmp_path, ram_bytes=len(_state(4)) - 1)
    assert second.lookup(keys, 4) == Restore(4, _state(4), "disk")
    assert second.lookup(keys, 4) == Restore(4, _state(4), "disk")
    assert second.stats()["ram"]["entries"] == 0


def test_longer_prefix_on_disk_beats_shorter_in_ram(tmp_path: Path, make_cache: MakeCache) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 3))
    first.close()

    second = make_cache(tmp_path)
    second.store(_entry(keys, 1))
    assert second.lookup(keys, 4) == Restore(3, _state(3), "disk")
    assert second.lookup(keys, 2) == Restore(1, _state(1), "ram")


def test_evicted_from_ram_still_found_on_disk(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path, ram_bytes=len(_state(1)))
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 1))
    cache.store(_entry(keys, 2))
    cache.close()  # flush the writes; lookups still work
    assert cache.stats()["ram"]["entries"] == 1
    assert cache.stats()["ram"]["evictions"] == 1
    assert cache.lookup(keys, 1) == Restore(1, _state(1), "disk")


def test_entry_already_on_disk_is_not_rewritten(
    tmp_path: Path, make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 2))
    first.close()

    second = make_cache(tmp_path)
    assert second._disk is not None
    written: list[Entry] = []
    monkeypatch.setattr(second._disk, "put", written.append)
    second.store(_entry(keys, 2))
    second.store(_entry(keys, 3))
    second.close()
    assert written == [_entry(keys, 3)]
    assert second.lookup(keys, 2) == Restore(2, _state(2), "ram")


def test_close_waits_for_pending_writes(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path)
    entries = [Entry(bytes([n]) * 16, 1, _state(1, n)) for n in range(50)]
    for entry in entries:
        cache.store(entry)
    cache.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        entry.key.hex() for entry in entries
    )


def test_busy_writer_keeps_entry_in_ram_only(
    tmp_path: Path,
    make_cache: MakeCache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = make_cache(tmp_path)
    disk = cache._disk
    assert disk is not None
    started = threading.Event()
    release = threading.Event()
    real_put = disk.put

    def slow_put(entry: Entry) -> None:
        started.set()
        release.wait(10)
        real_put(entry)

    monkeypatch.setattr(disk, "put", slow_put)
    entries = [Entry(bytes([n]) * 16, 1, _state(1, n)) for n in range(66)]
    cache.store(entries[0])
    assert started.wait(10)
    with caplog.at_level(logging.INFO, logger="deepwell.cache.prefixes"):
        for entry in entries[1:]:
            cache.store(entry)  # never blocks: 64 queue, the 66th is dropped
    release.set()
    cache.close()

    assert "disk writer busy" in caplog.text
    assert all(cache.contains(entry.key) for entry in entries)
    assert cache.stats()["ram"]["entries"] == 66
    on_disk = {path.name for path in tmp_path.iterdir()}
    assert on_disk == {entry.key.hex() for entry in entries[:65]}


# --- faults cost a miss ------------------------------------------------------------------


def _boom(key: bytes) -> Entry | None:
    raise RuntimeError("tier exploded")


def test_ram_tier_raising_is_a_miss(
    make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(None)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 2))
    monkeypatch.setattr(cache._ram, "get", _boom)
    with caplog.at_level(logging.ERROR, logger="deepwell.cache.prefixes"):
        assert cache.lookup(keys, 4) is None
    assert cache.stats()["ram"]["errors"] == 1
    assert "ram tier failed on lookup" in caplog.text


def test_ram_tier_raising_falls_back_to_disk(
    tmp_path: Path, make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache(tmp_path)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 2))
    cache.close()
    monkeypatch.setattr(cache._ram, "get", _boom)
    assert cache.lookup(keys, 4) == Restore(2, _state(2), "disk")
    assert cache.stats()["ram"]["errors"] == 1


def test_disk_tier_raising_is_a_miss_and_shorter_ram_prefix_still_used(
    tmp_path: Path, make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 4))
    first.close()

    second = make_cache(tmp_path)
    second.store(_entry(keys, 1))
    assert second._disk is not None
    monkeypatch.setattr(second._disk, "get", _boom)
    assert second.lookup(keys, 4) == Restore(1, _state(1), "ram")
    assert second.stats()["disk"]["errors"] == 1


def test_corrupted_disk_file_is_a_miss(tmp_path: Path, make_cache: MakeCache) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 2))
    first.store(_entry(keys, 4))
    first.close()
    path = tmp_path / keys[3].hex()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    second = make_cache(tmp_path)
    assert second.lookup(keys, 4) == Restore(2, _state(2), "disk")
    stats = second.stats()
    assert stats["disk"]["errors"] == 1
    assert stats["disk"]["entries"] == 1
    assert not path.exists()
    assert not second.contains(keys[3])


def test_failed_disk_write_is_counted_not_raised(
    tmp_path: Path, make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache(tmp_path)
    assert cache._disk is not None

    def failing_put(entry: Entry) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(cache._disk, "put", failing_put)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 3))
    cache.close()
    assert cache.stats()["disk"]["errors"] == 1
    assert cache.lookup(keys, 4) == Restore(3, _state(3), "ram")
    assert list(tmp_path.iterdir()) == []


def test_truncated_header_file_does_not_break_startup(
    tmp_path: Path, make_cache: MakeCache
) -> None:
    keys = block_keys("alice", FP, TOKENS, BLOCK)
    (tmp_path / keys[0].hex()).write_bytes(MAGIC + b"\x01")
    cache = make_cache(tmp_path)
    assert cache.lookup(keys, 4) is None
    assert "disk" in cache.stats()


# --- disk tier disabled ------------------------------------------------------------------


def test_disk_bytes_zero_disables_disk_tier(tmp_path: Path, make_cache: MakeCache) -> None:
    folder = tmp_path / "cache"
    cache = make_cache(folder, disk_bytes=0)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 2))
    assert set(cache.stats()) == {"ram"}
    assert cache.lookup(keys, 4) == Restore(2, _state(2), "ram")
    cache.close()
    assert not folder.exists()
    assert make_cache(folder).lookup(keys, 4) is None


def test_no_folder_disables_disk_tier(make_cache: MakeCache) -> None:
    cache = make_cache(None)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 3))
    assert set(cache.stats()) == {"ram"}
    assert cache.lookup(keys, 4) == Restore(3, _state(3), "ram")


def test_unusable_folder_disables_disk_tier(
    tmp_path: Path, make_cache: MakeCache, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "not-a-folder"
    folder.write_text("a file")
    with caplog.at_level(logging.WARNING, logger="deepwell.cache.prefixes"):
        cache = make_cache(folder)
    assert "disk tier disabled" in caplog.text
    assert set(cache.stats()) == {"ram"}
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 1))
    assert cache.lookup(keys, 4) == Restore(1, _state(1), "ram")


# --- stats -------------------------------------------------------------------------------


def test_stats_shape_and_counts(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path)
    stats = cache.stats()
    assert set(stats) == {"ram", "disk"}
    for tier in stats.values():
        assert set(tier) == STAT_FIELDS
        assert all(type(value) is int for value in tier.values())
    assert stats["ram"] == dict.fromkeys(STAT_FIELDS, 0)
    assert stats["disk"] == dict.fromkeys(STAT_FIELDS, 0)

    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 1))
    cache.store(_entry(keys, 2))
    cache.close()
    assert cache.lookup(keys, 4) is not None
    stats = cache.stats()
    assert stats["ram"] == {
        "entries": 2,
        "bytes": 2 * len(_state(1)),
        "hits": 1,
        "misses": 0,
        "evictions": 0,
        "errors": 0,
    }
    assert stats["disk"]["entries"] == 2
    assert stats["disk"]["bytes"] == sum(path.stat().st_size for path in tmp_path.iterdir())
    assert stats["disk"]["hits"] == 0
    assert cache.lookup(cache.keys("bob", TOKENS), 4) is None
    assert [cache.stats()[tier]["misses"] for tier in ("ram", "disk")] == [1, 1]


def test_stats_is_a_snapshot(make_cache: MakeCache) -> None:
    cache = make_cache(None)
    before = cache.stats()
    cache.store(_entry(cache.keys("alice", TOKENS), 1))
    assert before["ram"]["entries"] == 0
    assert cache.stats()["ram"]["entries"] == 1


# --- entries that are not what their key names ---------------------------------------------


def _signed_rewrite(path: Path, **change: object) -> None:
    """Change ``path``'s header and sign it again: only the cache's own checks remain."""
    data = path.read_bytes()
    at = len(MAGIC) + 32 + 4
    (length,) = struct.unpack_from("<I", data, at - 4)
    header = json.loads(data[at : at + length])
    header.update(change)
    encoded = json.dumps(header).encode()
    rest = struct.pack("<I", len(encoded)) + encoded + data[at + length :]
    path.write_bytes(MAGIC + hashlib.sha256(rest).digest() + rest)


@pytest.mark.parametrize(
    "change", [{"blocks": 9}, {"blocks": 1}, {"tail": list(range(BLOCK))}], ids=str
)
def test_disk_entry_claiming_another_prefix_is_a_miss_removed_and_logged_once(
    tmp_path: Path,
    make_cache: MakeCache,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, object],
) -> None:
    first = make_cache(tmp_path)
    keys = first.keys("alice", TOKENS)
    first.store(_entry(keys, 1))
    first.store(_entry(keys, 3))
    first.close()
    _signed_rewrite(tmp_path / keys[2].hex(), **change)

    second = make_cache(tmp_path)
    with caplog.at_level(logging.WARNING, logger="deepwell.cache.prefixes"):
        assert second.lookup(keys, 4) == Restore(1, _state(1), "disk")
        assert second.lookup(keys, 4) == Restore(1, _state(1), "ram")
        assert second.lookup(keys, 4) == Restore(1, _state(1), "ram")
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1
    assert not second.contains(keys[2])
    assert not (tmp_path / keys[2].hex()).exists()
    assert second.stats()["disk"]["errors"] == 1


def test_ram_entry_claiming_another_prefix_is_a_miss(make_cache: MakeCache) -> None:
    cache = make_cache(None)
    keys = cache.keys("alice", TOKENS)
    cache.store(Entry(keys[1], 4, _state(4)))  # under block 2's key, claiming 4 blocks
    cache.store(Entry(keys[0], 1, b""))  # no state at all
    assert cache.lookup(keys, 4) is None
    assert cache.stats()["ram"]["errors"] == 2
    assert not cache.contains(keys[1])
    assert not cache.contains(keys[0])


def test_discard_removes_an_entry_from_every_tier(tmp_path: Path, make_cache: MakeCache) -> None:
    cache = make_cache(tmp_path)
    keys = cache.keys("alice", TOKENS)
    cache.store(_entry(keys, 2))
    cache.store(_entry(keys, 3))
    cache.close()
    cache.discard(keys[2])
    cache.discard(keys[3])  # nothing saved under it: a no-op
    assert not cache.contains(keys[2])
    assert not (tmp_path / keys[2].hex()).exists()
    assert cache.lookup(keys, 4) == Restore(2, _state(2), "ram")
    assert make_cache(tmp_path).lookup(keys, 4) == Restore(2, _state(2), "disk")


# --- where a prompt is saved ----------------------------------------------------------------


def _points(total: int, chunk: int, interval: int = 1024) -> list[int]:
    """The points a prompt of ``total`` tokens read ``chunk`` tokens a step is saved at."""
    points = []
    for before in range(0, total, chunk):
        point = save_point(before, min(before + chunk, total), total, interval)
        if point is not None:
            points.append(point)
    return points


def test_a_prompt_is_saved_at_its_end() -> None:
    assert _points(100, 512) == [100]
    assert _points(2047, 256) == [2047]  # no point inside: 1024 is more than half of it
    assert save_point(0, 500, 500, 1024) == 500


def test_a_long_prompt_is_also_saved_at_doubling_points_up_to_half_of_it() -> None:
    assert _points(2048, 256) == [1024, 2048]
    assert _points(7441, 512) == [1024, 2048, 7441]
    assert _points(40_000, 512) == [1024, 2048, 4096, 8192, 16384, 40_000]
    assert _points(9000, 100, interval=64) == [64, 128, 256, 512, 1024, 2048, 4096, 9000]


def test_a_step_crossing_several_points_saves_the_last_one() -> None:
    assert save_point(0, 512, 9000, 64) == 512
    assert save_point(100, 200, 9000, 64) == 128
    assert save_point(130, 250, 9000, 64) is None


@pytest.mark.parametrize("chunk", [1, 64, 256, 512])
@pytest.mark.parametrize("interval", [64, 1000, 1024])
def test_the_tokens_saved_for_a_prompt_stay_under_twice_its_length(
    chunk: int, interval: int
) -> None:
    for total in [*range(1, 5000, 97), 7441, 8192, 8193, 12_289, 32_768]:
        points = _points(total, chunk, interval)
        assert points[-1] == total
        assert sum(points) < 2 * total
        assert points == sorted(set(points))


def test_a_long_prompt_cut_short_leaves_a_prefix() -> None:
    total = 7441
    cut = int(total * 0.9)
    saved = [p for p in _points(total, 256) if p <= cut]
    assert max(saved) == 2048
