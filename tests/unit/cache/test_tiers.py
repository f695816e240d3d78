"""RamTier and DiskTier: byte-bounded LRU tiers; the disk one survives restarts and damage."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepwell.cache.tiers import MAGIC, DiskTier, Entry, RamTier, TierStats

FP = "model-fingerprint"


def _key(n: int) -> bytes:
    return bytes([n]) * 16


def _entry(n: int, size: int = 10, blocks: int = 1, fill: int | None = None) -> Entry:
    byte = n if fill is None else fill
    return Entry(_key(n), blocks, bytes([byte % 256]) * size)


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _file_size(tmp_path: Path, entry: Entry) -> int:
    """The size on disk of ``entry`` (header included), measured in a scratch folder."""
    folder = tmp_path / "scratch-size"
    DiskTier(folder, FP, 1 << 20).put(entry)
    return (folder / entry.key.hex()).stat().st_size


# --- RamTier -------------------------------------------------------------------------


def test_ram_round_trip_and_stats() -> None:
    tier = RamTier(100)
    entry = _entry(1, size=10, blocks=3)
    assert tier.get(entry.key) is None
    assert entry.key not in tier
    tier.put(entry)
    assert entry.key in tier
    assert tier.get(entry.key) == entry
    assert tier.stats == TierStats(entries=1, bytes=10, hits=1, evictions=0, errors=0)


def test_ram_miss_is_not_a_hit() -> None:
    tier = RamTier(100)
    tier.put(_entry(1))
    assert tier.get(_key(2)) is None
    assert tier.stats.hits == 0


def test_ram_evicts_least_recently_put() -> None:
    tier = RamTier(30)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    assert tier.stats.bytes == 30
    tier.put(_entry(4))
    assert _key(1) not in tier
    assert all(_key(n) in tier for n in (2, 3, 4))
    assert tier.stats == TierStats(entries=3, bytes=30, hits=0, evictions=1, errors=0)


def test_ram_get_refreshes_recency() -> None:
    tier = RamTier(30)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    assert tier.get(_key(1)) is not None
    tier.put(_entry(4))
    assert _key(2) not in tier
    assert all(_key(n) in tier for n in (1, 3, 4))
    tier.put(_entry(5))
    assert _key(3) not in tier
    assert all(_key(n) in tier for n in (1, 4, 5))


def test_ram_replacing_refreshes_recency() -> None:
    tier = RamTier(30)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    tier.put(_entry(1, fill=99))
    tier.put(_entry(4))
    assert _key(2) not in tier
    assert tier.get(_key(1)) == _entry(1, fill=99)


def test_ram_evicts_as_many_as_needed() -> None:
    tier = RamTier(30)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    tier.put(_entry(4, size=25))
    assert [n for n in (1, 2, 3, 4) if _key(n) in tier] == [4]
    assert tier.stats == TierStats(entries=1, bytes=25, hits=0, evictions=3, errors=0)


def test_ram_entry_filling_budget_exactly_is_kept() -> None:
    tier = RamTier(30)
    tier.put(_entry(1, size=30))
    assert _key(1) in tier
    assert tier.stats.bytes == 30
    assert tier.stats.evictions == 0


def test_ram_entry_bigger_than_budget_is_not_stored() -> None:
    tier = RamTier(30)
    tier.put(_entry(1))
    tier.put(_entry(2, size=31))
    assert _key(2) not in tier
    assert tier.get(_key(2)) is None
    assert _key(1) in tier
    assert tier.stats == TierStats(entries=1, bytes=10, hits=0, evictions=0, errors=0)


def test_ram_zero_budget_stores_nothing() -> None:
    tier = RamTier(0)
    tier.put(_entry(1, size=1))
    assert _key(1) not in tier
    assert tier.stats == TierStats()


def test_ram_replacing_an_entry_keeps_bytes_right() -> None:
    tier = RamTier(100)
    tier.put(_entry(1, size=10))
    tier.put(_entry(2, size=20))
    tier.put(_entry(1, size=4, fill=7))
    assert tier.stats.entries == 2
    assert tier.stats.bytes == 24
    assert tier.get(_key(1)) == _entry(1, size=4, fill=7)
    tier.put(_entry(1, size=50, fill=8))
    assert tier.stats.entries == 2
    assert tier.stats.bytes == 70
    assert tier.stats.evictions == 0


def test_ram_replacing_with_bigger_entry_evicts_others_not_itself() -> None:
    tier = RamTier(30)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    tier.put(_entry(3, size=25, fill=9))
    assert [n for n in (1, 2, 3) if _key(n) in tier] == [3]
    assert tier.stats.bytes == 25
    assert tier.stats.entries == 1
    assert tier.stats.evictions == 2


def test_ram_concurrent_puts_keep_stats_consistent() -> None:
    tier = RamTier(500)

    def work(offset: int) -> None:
        for i in range(300):
            n = (offset * 31 + i) % 200
            tier.put(_entry(n, size=1 + n % 17))
            tier.get(_key((n * 7) % 200))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    present = [n for n in range(200) if _key(n) in tier]
    assert tier.stats.entries == len(present)
    assert tier.stats.bytes == sum(1 + n % 17 for n in present)
    assert tier.stats.bytes <= 500


# --- DiskTier: round trips and restarts ------------------------------------------------


def test_disk_round_trip_and_file_layout(tmp_path: Path) -> None:
    folder = tmp_path / "nested" / "cache"
    tier = DiskTier(folder, FP, 1 << 20)
    assert folder.is_dir()
    entry = _entry(1, size=33, blocks=5)
    assert tier.get(entry.key) is None
    tier.put(entry)
    assert entry.key in tier
    assert _files(folder) == [entry.key.hex()]
    data = (folder / entry.key.hex()).read_bytes()
    assert data.startswith(MAGIC)
    assert data.endswith(entry.state)
    assert tier.stats.bytes == len(data)
    assert tier.stats.entries == 1
    assert tier.get(entry.key) == entry
    assert tier.stats.hits == 1
    assert tier.stats.errors == 0


def test_disk_survives_restart(tmp_path: Path) -> None:
    first = DiskTier(tmp_path, FP, 1 << 20)
    entries = [_entry(n, size=10 + n, blocks=n) for n in (1, 2, 3)]
    for entry in entries:
        first.put(entry)
    stats = first.stats

    second = DiskTier(tmp_path, FP, 1 << 20)
    assert second.stats.entries == 3
    assert second.stats.bytes == stats.bytes
    assert second.stats.errors == 0
    for entry in entries:
        assert entry.key in second
        assert second.get(entry.key) == entry
    assert second.stats.hits == 3


def test_disk_empty_state_round_trips(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1, size=0))
    assert DiskTier(tmp_path, FP, 1 << 20).get(_key(1)) == _entry(1, size=0)


def test_disk_other_fingerprint_removed_on_open(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    DiskTier(tmp_path / "old", "old-model", 1 << 20).put(_entry(1))
    DiskTier(folder, FP, 1 << 20).put(_entry(2))
    os.replace(tmp_path / "old" / _key(1).hex(), folder / _key(1).hex())
    assert len(_files(folder)) == 2

    tier = DiskTier(folder, FP, 1 << 20)
    assert _files(folder) == [_key(2).hex()]
    assert _key(1) not in tier
    assert tier.get(_key(1)) is None
    assert tier.stats.entries == 1
    assert tier.stats.bytes == (folder / _key(2).hex()).stat().st_size


def test_disk_file_swapped_for_other_fingerprint_after_open(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    theirs = tmp_path / "theirs"
    tier = DiskTier(ours, FP, 1 << 20)
    tier.put(_entry(1))
    DiskTier(theirs, "other-model", 1 << 20).put(_entry(1))
    os.replace(theirs / _key(1).hex(), ours / _key(1).hex())

    assert tier.get(_key(1)) is None
    assert tier.stats.errors == 1
    assert _key(1) not in tier
    assert _files(ours) == []


# --- DiskTier: damage ------------------------------------------------------------------


def _flip(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("index", [-1, -10, -20])
def test_disk_flipped_state_bytes_detected_on_get(tmp_path: Path, index: int) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=20))
    tier.put(_entry(2, size=20))
    _flip(tmp_path / _key(1).hex(), index)

    assert tier.get(_key(1)) is None
    assert tier.stats.errors == 1
    assert tier.stats.hits == 0
    assert _key(1) not in tier
    assert not (tmp_path / _key(1).hex()).exists()
    assert tier.stats.entries == 1
    assert tier.stats.bytes == (tmp_path / _key(2).hex()).stat().st_size
    assert tier.get(_key(2)) == _entry(2, size=20)


def test_disk_flipped_state_bytes_detected_after_restart(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1, size=20))
    _flip(tmp_path / _key(1).hex(), -5)

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _key(1) in tier  # the header is intact: only reading the state finds the damage
    assert tier.get(_key(1)) is None
    assert tier.stats.errors == 1
    assert tier.stats == TierStats(entries=0, bytes=0, hits=0, evictions=0, errors=1)
    assert _files(tmp_path) == []


# The layout: MAGIC, the SHA-256 of the rest, the header's length, the JSON header, the state.
DIGEST_AT = len(MAGIC)
HEADER_AT = len(MAGIC) + 32 + 4


def _header_of(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    (length,) = struct.unpack_from("<I", data, HEADER_AT - 4)
    header: dict[str, Any] = json.loads(data[HEADER_AT : HEADER_AT + length])
    return header


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None], *, sign: bool) -> None:
    """Change ``path``'s header; with ``sign``, also recompute the digest over the result
    (a forger who knows the format), without it leave the old digest (damage)."""
    data = path.read_bytes()
    (length,) = struct.unpack_from("<I", data, HEADER_AT - 4)
    header = json.loads(data[HEADER_AT : HEADER_AT + length])
    change(header)
    encoded = json.dumps(header).encode()
    rest = struct.pack("<I", len(encoded)) + encoded + data[HEADER_AT + length :]
    digest = hashlib.sha256(rest).digest() if sign else data[DIGEST_AT : DIGEST_AT + 32]
    path.write_bytes(MAGIC + digest + rest)


def _assert_removed_miss(tier: DiskTier, folder: Path, key: bytes) -> None:
    assert tier.get(key) is None
    assert tier.stats.errors == 1
    assert tier.stats.hits == 0
    assert key not in tier
    assert not (folder / key.hex()).exists()


def _change_digit(path: Path, field: bytes) -> None:
    """Change one digit of the number after ``field`` in the header, as the review did."""
    data = path.read_bytes()
    at = data.index(field, HEADER_AT) + len(field)
    digit = data[at : at + 1]
    assert digit.isdigit()
    path.write_bytes(data[:at] + (b"7" if digit != b"7" else b"3") + data[at + 1 :])


@pytest.mark.parametrize("field", [b'"blocks": ', b'"tail": [', b'"state_bytes": '])
def test_disk_changed_digit_in_header_is_a_miss(tmp_path: Path, field: bytes) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(Entry(_key(1), 2, b"s" * 40, (5, 6)))
    _change_digit(tmp_path / _key(1).hex(), field)

    _assert_removed_miss(tier, tmp_path, _key(1))


@pytest.mark.parametrize("where", ["magic", "digest", "length", "header"])
def test_disk_flipped_header_byte_is_a_miss(tmp_path: Path, where: str) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=20))
    index = {"magic": 2, "digest": DIGEST_AT + 5, "length": HEADER_AT - 4, "header": HEADER_AT + 9}
    _flip(tmp_path / _key(1).hex(), index[where])

    _assert_removed_miss(tier, tmp_path, _key(1))


@pytest.mark.parametrize("where", ["magic", "digest", "length", "header"])
def test_disk_flipped_header_byte_after_restart_never_raises(tmp_path: Path, where: str) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1, size=20))
    index = {"magic": 2, "digest": DIGEST_AT + 5, "length": HEADER_AT - 4, "header": HEADER_AT + 9}
    _flip(tmp_path / _key(1).hex(), index[where])

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert tier.get(_key(1)) is None
    assert _key(1) not in tier
    assert _files(tmp_path) == []


def test_disk_header_claiming_another_state_length_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=20))
    _rewrite(tmp_path / _key(1).hex(), lambda h: h.update(state_bytes=21), sign=True)

    _assert_removed_miss(tier, tmp_path, _key(1))


@pytest.mark.parametrize(
    "change",
    [
        {"blocks": -1},
        {"blocks": True},
        {"blocks": "2"},
        {"tail": [1, -2]},
        {"tail": 3},
        {"key": None},
    ],
    ids=["negative-blocks", "bool-blocks", "text-blocks", "negative-token", "tail-int", "no-key"],
)
def test_disk_signed_header_of_the_wrong_shape_is_a_miss(
    tmp_path: Path, change: dict[str, object]
) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=20))
    _rewrite(tmp_path / _key(1).hex(), lambda h: h.update(change), sign=True)

    _assert_removed_miss(tier, tmp_path, _key(1))


def test_disk_files_swapped_between_keys_are_misses(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=20, blocks=1))
    tier.put(_entry(2, size=30, blocks=2))
    one, two = tmp_path / _key(1).hex(), tmp_path / _key(2).hex()
    os.replace(one, tmp_path / "swap")
    os.replace(two, one)
    os.replace(tmp_path / "swap", two)

    assert tier.get(_key(1)) is None
    assert tier.get(_key(2)) is None
    assert tier.stats.errors == 2
    assert _files(tmp_path) == []
    assert tier.stats == TierStats(entries=0, bytes=0, hits=0, evictions=0, errors=2)


def test_disk_files_swapped_between_keys_removed_on_open(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1))
    os.replace(tmp_path / _key(1).hex(), tmp_path / _key(2).hex())

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _files(tmp_path) == []
    assert _key(1) not in tier
    assert _key(2) not in tier


def test_disk_bad_file_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=20))
    _flip(tmp_path / _key(1).hex(), HEADER_AT + 3)
    with caplog.at_level(logging.WARNING, logger="deepwell.cache.tiers"):
        for _ in range(5):
            assert tier.get(_key(1)) is None
    assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1
    assert tier.stats.errors == 1


def test_disk_file_of_the_previous_format_removed_on_open(tmp_path: Path) -> None:
    header = json.dumps({"fingerprint": FP, "blocks": 1, "tail": [], "sha256": "0" * 64}).encode()
    old = b"DWKV1\n" + struct.pack("<I", len(header)) + header + b"state"
    (tmp_path / _key(1).hex()).write_bytes(old)
    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _files(tmp_path) == []
    assert _key(1) not in tier


def test_disk_truncated_state_detected_on_get(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1, size=40))
    path = tmp_path / _key(1).hex()
    path.write_bytes(path.read_bytes()[:-15])

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert tier.get(_key(1)) is None
    assert tier.stats.errors == 1
    assert _key(1) not in tier
    assert not path.exists()
    assert tier.stats.bytes == 0


def test_disk_file_truncated_inside_header_removed_on_open(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1, size=40))
    path = tmp_path / _key(1).hex()
    path.write_bytes(path.read_bytes()[: len(MAGIC) + 4 + 10])

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _key(1) not in tier
    assert _files(tmp_path) == []
    assert tier.stats == TierStats()


@pytest.mark.parametrize("content", [b"", b"garbage", MAGIC[:3]])
def test_disk_file_without_magic_removed_on_open(tmp_path: Path, content: bytes) -> None:
    (tmp_path / _key(1).hex()).write_bytes(content)
    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _key(1) not in tier
    assert _files(tmp_path) == []


@pytest.mark.parametrize("extra", [b"", b"\x01", b"\x01\x00\x00"], ids=["0", "1", "3"])
def test_disk_file_truncated_in_header_length_removed_on_open(tmp_path: Path, extra: bytes) -> None:
    (tmp_path / _key(1).hex()).write_bytes(MAGIC + extra)
    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _key(1) not in tier
    assert _files(tmp_path) == []


def test_disk_file_truncated_in_header_length_after_open_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1))
    (tmp_path / _key(1).hex()).write_bytes(MAGIC + b"\x01")
    assert tier.get(_key(1)) is None
    assert tier.stats.errors == 1
    assert _files(tmp_path) == []


def test_disk_file_removed_behind_its_back_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1))
    (tmp_path / _key(1).hex()).unlink()
    assert tier.get(_key(1)) is None
    assert tier.stats.errors == 1
    assert _key(1) not in tier
    assert tier.stats.entries == 0
    assert tier.stats.bytes == 0


def test_disk_leftover_tmp_and_junk_names_removed_on_open(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1))
    good = (tmp_path / _key(1).hex()).read_bytes()
    # Valid cache content under names the tier never writes.
    (tmp_path / f"{_key(2).hex()}.tmp").write_bytes(good)
    (tmp_path / "README").write_bytes(good)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "zz").write_bytes(b"")
    (tmp_path / ".hidden").write_bytes(good)

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _files(tmp_path) == [_key(1).hex()]
    assert tier.stats.entries == 1
    assert tier.stats.bytes == len(good)
    assert _key(2) not in tier
    assert tier.get(_key(2)) is None


@pytest.mark.parametrize("name", ["junk", _key(9).hex()])
def test_disk_stray_directory_does_not_break_open(tmp_path: Path, name: str) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1))
    (tmp_path / name).mkdir()
    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert tier.get(_key(1)) == _entry(1)


# --- DiskTier: budget --------------------------------------------------------------------


def test_disk_budget_evicts_least_recently_used(tmp_path: Path) -> None:
    size = _file_size(tmp_path, _entry(1))
    folder = tmp_path / "cache"
    tier = DiskTier(folder, FP, 3 * size)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    assert tier.stats.bytes == 3 * size
    assert tier.get(_key(1)) is not None

    tier.put(_entry(4))
    assert _key(2) not in tier
    assert _files(folder) == sorted(_key(n).hex() for n in (1, 3, 4))
    assert tier.stats == TierStats(entries=3, bytes=3 * size, hits=1, evictions=1, errors=0)

    tier.put(_entry(5))
    assert _key(3) not in tier
    assert _files(folder) == sorted(_key(n).hex() for n in (1, 4, 5))
    assert tier.stats.evictions == 2


def test_disk_evicts_as_many_as_needed(tmp_path: Path) -> None:
    size = _file_size(tmp_path, _entry(1))
    big = _file_size(tmp_path, _entry(4, size=10 + 2 * size))
    folder = tmp_path / "cache"
    tier = DiskTier(folder, FP, big + size)
    for n in (1, 2, 3):
        tier.put(_entry(n))
    tier.put(_entry(4, size=10 + 2 * size))
    assert _files(folder) == sorted(_key(n).hex() for n in (3, 4))
    assert tier.stats.bytes == big + size
    assert tier.stats.evictions == 2


def test_disk_entry_bigger_than_budget_leaves_nothing(tmp_path: Path) -> None:
    size = _file_size(tmp_path, _entry(1))
    folder = tmp_path / "cache"
    tier = DiskTier(folder, FP, size)
    tier.put(_entry(2, size=11))
    assert _key(2) not in tier
    assert _files(folder) == []
    assert tier.stats.bytes == 0
    assert tier.stats.entries == 0


def test_disk_budget_enforced_on_open_oldest_first(tmp_path: Path) -> None:
    size = _file_size(tmp_path, _entry(1))
    folder = tmp_path / "cache"
    writer = DiskTier(folder, FP, 1 << 20)
    for n in (1, 2, 3):
        writer.put(_entry(n))
    # Modification times decide who is oldest across restarts: 2, then 3, then 1.
    for n, stamp in ((2, 1_000_000), (3, 2_000_000), (1, 3_000_000)):
        os.utime(folder / _key(n).hex(), (stamp, stamp))

    tier = DiskTier(folder, FP, 2 * size)
    assert _files(folder) == sorted(_key(n).hex() for n in (1, 3))
    assert tier.stats == TierStats(entries=2, bytes=2 * size, hits=0, evictions=1, errors=0)

    tier.put(_entry(4))
    assert _key(3) not in tier
    assert _files(folder) == sorted(_key(n).hex() for n in (1, 4))


def test_disk_replacing_an_entry_keeps_bytes_right(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=10))
    tier.put(_entry(2, size=10))
    tier.put(_entry(1, size=500, fill=3))
    assert tier.stats.entries == 2
    on_disk = sum(path.stat().st_size for path in tmp_path.iterdir())
    assert tier.stats.bytes == on_disk
    assert tier.get(_key(1)) == _entry(1, size=500, fill=3)
    tier.put(_entry(1, size=1, fill=4))
    assert tier.stats.bytes == sum(path.stat().st_size for path in tmp_path.iterdir())
    assert tier.stats.entries == 2
    assert tier.stats.evictions == 0


# --- DiskTier: atomic writes ---------------------------------------------------------


def _failing_replace(*args: object, **kwargs: object) -> None:
    raise OSError("disk full")


def test_disk_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    monkeypatch.setattr(os, "replace", _failing_replace)
    with pytest.raises(OSError, match="disk full"):
        tier.put(_entry(1))
    monkeypatch.undo()

    assert _files(tmp_path) == []  # no temporary file is left behind
    assert not (tmp_path / _key(1).hex()).exists()
    assert _key(1) not in tier
    assert tier.get(_key(1)) is None
    assert tier.stats == TierStats()

    reopened = DiskTier(tmp_path, FP, 1 << 20)
    assert _key(1) not in reopened
    assert _files(tmp_path) == []


def test_disk_failed_rewrite_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1, size=10, fill=1))
    old = (tmp_path / _key(1).hex()).read_bytes()
    monkeypatch.setattr(os, "replace", _failing_replace)
    with pytest.raises(OSError, match="disk full"):
        tier.put(_entry(1, size=30, fill=2))
    monkeypatch.undo()

    assert (tmp_path / _key(1).hex()).read_bytes() == old
    assert tier.get(_key(1)) == _entry(1, size=10, fill=1)
    assert tier.stats.bytes == len(old)
    assert DiskTier(tmp_path, FP, 1 << 20).get(_key(1)) == _entry(1, size=10, fill=1)


def test_disk_tail_tokens_survive_restart(tmp_path: Path) -> None:
    entry = Entry(_key(7), 2, b"state-bytes", (11, 12, 13))
    DiskTier(tmp_path, "fp", 1 << 20).put(entry)

    assert DiskTier(tmp_path, "fp", 1 << 20).get(entry.key) == entry


def test_disk_header_with_bad_tail_is_a_miss(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path, "fp", 1 << 20)
    entry = Entry(_key(8), 1, b"state", ("x",))  # type: ignore[arg-type]
    disk.put(entry)

    assert disk.get(entry.key) is None
    assert disk.stats.errors == 1
    assert _files(tmp_path) == []


# --- DiskTier: privacy and temporary files --------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_disk_files_and_folders_are_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cache" / "model"
    tier = DiskTier(folder, FP, 1 << 20)
    tier.put(_entry(1))
    tier.put(_entry(1, fill=9))  # a rewrite too
    assert _mode(folder) == 0o700
    assert _mode(folder.parent) == 0o700
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(folder / _key(1).hex()) == 0o600


def test_disk_existing_open_folder_is_made_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)  # noqa: S103 (the open folder an older version left)
    DiskTier(folder, FP, 1 << 20).put(_entry(1))
    assert _mode(folder) == 0o700
    assert _mode(folder / _key(1).hex()) == 0o600


def test_disk_stray_temporary_file_removed_on_open(tmp_path: Path) -> None:
    DiskTier(tmp_path, FP, 1 << 20).put(_entry(1))
    good = (tmp_path / _key(1).hex()).read_bytes()
    # What a crash inside atomic_write leaves: a hidden name beside the target.
    (tmp_path / f".{_key(2).hex()}.0123456789abcdef.tmp").write_bytes(good)

    tier = DiskTier(tmp_path, FP, 1 << 20)
    assert _files(tmp_path) == [_key(1).hex()]
    assert tier.stats.bytes == len(good)
    assert tier.get(_key(2)) is None


def _failing_fsync(fd: int) -> None:
    raise OSError("I/O error")


def test_disk_failed_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = DiskTier(tmp_path, FP, 1 << 20)
    tier.put(_entry(1))
    monkeypatch.setattr(os, "fsync", _failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        tier.put(_entry(2, size=50))
    monkeypatch.undo()

    assert _files(tmp_path) == [_key(1).hex()]
    assert _key(2) not in tier
    assert tier.stats.bytes == (tmp_path / _key(1).hex()).stat().st_size
    tier.put(_entry(3))  # the reservation of the failed write was given back
    assert tier.stats.evictions == 0


def test_disk_write_under_way_counts_against_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = _file_size(tmp_path, _entry(1))
    folder = tmp_path / "cache"
    tier = DiskTier(folder, FP, 2 * size)
    tier.put(_entry(1))
    tier.put(_entry(2))
    seen: list[int] = []
    real_fsync = os.fsync

    def measuring_fsync(fd: int) -> None:
        seen.append(sum(path.stat().st_size for path in folder.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", measuring_fsync)
    tier.put(_entry(3))
    monkeypatch.undo()

    assert seen == [2 * size]  # the temporary file and one older file, never three
    assert _files(folder) == sorted(_key(n).hex() for n in (2, 3))
    assert tier.stats.bytes == 2 * size
