"""Writing a file atomically: readers see the old contents or the new ones, never a part."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


@contextmanager
def atomic_write(
    path: Path, *, mode: int | None = None, sync_folder: bool = False
) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new contents to, put in place when the block ends.

    The file is a new temporary one in ``path``'s folder, named ``.<name>.<random>.tmp``.
    When the block ends normally it is flushed, fsynced, given ``mode`` (when set; it
    is owner-only until then; without ``mode`` it has the permissions the umask gives
    any new file) and renamed over ``path``. ``sync_folder`` also fsyncs the folder, so
    that the rename itself survives a crash. If the block raises, or any step before
    the rename fails, the temporary file is removed and ``path`` is left as it was.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, _CREATE, 0o600 if mode is not None else 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sync_folder:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
