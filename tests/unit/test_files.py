"""atomic_write: the new contents whole under the final name, or nothing changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepwell.files import atomic_write


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError("disk full")


def test_writes_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    with atomic_write(target) as out:
        out.write(b"one ")
        out.write(b"two")
    assert target.read_bytes() == b"one two"
    assert _names(tmp_path) == ["data.bin"]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old contents, longer than the new")
    with atomic_write(target) as out:
        out.write(b"new")
    assert target.read_bytes() == b"new"
    assert _names(tmp_path) == ["data.bin"]


def test_writes_beside_the_target_under_a_hidden_name(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    with atomic_write(target) as out:
        out.write(b"x")
        (temporary,) = (name for name in _names(tmp_path) if name != "data.bin")
        assert not target.exists()
    assert temporary.startswith(".data.bin.")
    assert temporary.endswith(".tmp")


def _write_half_then_fail(target: Path) -> None:
    with atomic_write(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("boom")


def test_an_error_in_the_block_leaves_no_trace(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        _write_half_then_fail(target)
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.bin"]


def test_a_failed_rename_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.bin"
    monkeypatch.setattr(os, "replace", _fail)
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as out:
        out.write(b"new")
    monkeypatch.undo()
    assert _names(tmp_path) == []


def test_a_failed_sync_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _fail)
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as out:
        out.write(b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.bin"]


def test_the_data_is_synced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(source: Path, destination: Path) -> None:
        calls.append("replace")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_write(tmp_path / "data.bin") as out:
        out.write(b"x")
    assert calls == ["fsync", "replace"]
    calls.clear()
    with atomic_write(tmp_path / "data.bin", sync_folder=True) as out:
        out.write(b"y")
    assert calls == ["fsync", "replace", "fsync"]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640])
def test_mode_is_applied_exactly(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "data.bin"
    with atomic_write(target, mode=mode) as out:
        out.write(b"x")
    assert target.stat().st_mode & 0o777 == mode


def test_without_a_mode_the_umask_decides(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    with atomic_write(target) as out:
        out.write(b"x")
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_missing_folder_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_write(tmp_path / "absent" / "data.bin"):
        pass
    assert _names(tmp_path) == []
