"""Where backing models' GGUF files come from, and how they are checked.

:func:`ensure_model_file` turns a :class:`~deepwell.settings.BackingModel` into the path of
a GGUF file on disk, dispatching on ``source.kind``:

``package``
    The file ships in parts inside Python packages (each holding its part under
    ``data/``). The parts are concatenated, in the order the packages are listed, into
    ``models_dir / source.filename``. The file is written under a temporary name in the same
    folder, verified, fsynced, and only then renamed into place, so a crash or a failed
    check never leaves a partial or wrong file under the final name.
``file``
    A GGUF file the user points at with ``source.path``; used where it is.
``huggingface``
    ``source.filename`` in the Hub repository ``source.repo``, fetched with
    ``huggingface_hub.hf_hub_download`` into ``models_dir / "hf"``. With ``HF_HUB_OFFLINE``
    set it resolves from that cache only and never touches the network.

Whenever ``source.sha256`` is configured the file's digest is checked. Hashing a model of
hundreds of megabytes on every start would be slow, so a verified file is recorded in a
small JSON sidecar (see :func:`sidecar_path`) holding the file's path, size, ``mtime_ns``
and sha256; while the file's size and mtime still match the record, the file is reused
without being read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, Any, Protocol

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from deepwell.errors import ConfigurationError
from deepwell.files import atomic_write
from deepwell.settings import BackingModel, ModelSource

CHUNK_SIZE = 8 * 1024 * 1024
"""Bytes read and written at a time while assembling or hashing a model file."""

FILE_MODE = 0o644
"""Permissions of assembled files and sidecars (temporary files start out owner-only)."""

SIDECAR_VERSION = 1
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def ensure_model_file(
    name: str, backing: BackingModel, models_dir: Path, *, progress: bool = True
) -> Path:
    """Return the path of a verified GGUF file for the backing model ``name``.

    ``models_dir`` holds assembled files, verification sidecars and the Hub cache; it is
    created when needed. ``progress`` shows a progress bar on stderr while a file is
    assembled or hashed.

    Raises :class:`~deepwell.errors.ConfigurationError` when the file cannot be obtained (a
    part package is not installed, a configured file is missing, the Hub cannot provide
    it) or when its size or sha256 differ from those configured.
    """
    source = backing.source
    if source.kind == "package":
        return _ensure_from_packages(name, source, models_dir, progress)
    if source.kind == "file":
        return _ensure_from_file(name, source, models_dir, progress)
    return _ensure_from_hub(name, source, models_dir, progress)


def sidecar_path(name: str, source: ModelSource, models_dir: Path) -> Path:
    """Where the verification record of backing model ``name`` is kept.

    Beside the assembled file (``<file>.verified``) for ``package`` sources; in
    ``models_dir`` as ``<name>.<kind>.verified`` for the others, never beside a user's file.
    """
    if source.kind == "package":
        target = _assembled_path(name, source, models_dir)
        return target.with_name(f"{target.name}.verified")
    return models_dir / f"{name}.{source.kind}.verified"


# --- package sources ---------------------------------------------------------------------


def _ensure_from_packages(name: str, source: ModelSource, models_dir: Path, progress: bool) -> Path:
    """Assemble (or reuse) the file made of the parts in ``source.packages``."""
    if not source.packages:
        raise ConfigurationError(f"backing model {name!r}: a package source lists no packages")
    target = _assembled_path(name, source, models_dir)
    sidecar = sidecar_path(name, source, models_dir)
    origin = "package:" + ",".join(source.packages)
    if _recorded(sidecar, target, source, origin):
        return target
    if target.is_file() and source.sha256 is not None:
        sha256 = _hash_file(target, progress, f"Verifying {target.name}")
        if _mismatch(source, sha256, target.stat().st_size) is None:
            _write_sidecar(sidecar, target, sha256, origin)
            return target
    parts = [part for package in source.packages for part in _package_parts(package)]
    models_dir.mkdir(parents=True, exist_ok=True)
    sha256 = _assemble(parts, target, source, progress)
    _write_sidecar(sidecar, target, sha256, origin)
    return target


def _assembled_path(name: str, source: ModelSource, models_dir: Path) -> Path:
    """``models_dir / source.filename``, or ``models_dir / "<name>.gguf"`` without one."""
    filename = source.filename or f"{name}.gguf"
    if Path(filename).name != filename or filename in {".", ".."}:
        raise ConfigurationError(
            f"backing model {name!r}: filename {filename!r} must be a plain file name"
        )
    return models_dir / filename


def _package_parts(package: str) -> list[Traversable]:
    """The files under ``package``'s ``data/`` folder, sorted by name (hidden files skipped).

    Raises ConfigurationError naming the pip distribution to install when the package
    cannot be imported, or when it holds no data file.
    """
    distribution = package.replace("_", "-")
    try:
        root = files(package)
    except ImportError as exc:
        raise ConfigurationError(
            f"the model part package {package!r} is not installed ({exc}); "
            f"install it with `pip install {distribution}`"
        ) from exc
    data = root / "data"
    parts = [] if not data.is_dir() else [p for p in data.iterdir() if _is_data_file(p)]
    if not parts:
        raise ConfigurationError(
            f"the model part package {package!r} has no file under data/; "
            f"reinstall it with `pip install --force-reinstall {distribution}`"
        )
    return sorted(parts, key=lambda part: part.name)


def _is_data_file(entry: Traversable) -> bool:
    return entry.is_file() and not entry.name.startswith(".")


def _assemble(
    parts: Sequence[Traversable], target: Path, source: ModelSource, progress: bool
) -> str:
    """Concatenate ``parts`` into ``target`` atomically and return the file's sha256.

    The bytes go to a temporary file in ``target``'s folder, which is checked against
    ``source.size`` and ``source.sha256`` (when set), fsynced and then renamed over
    ``target``. On any failure the temporary file is removed and ``target`` is untouched.
    """
    with atomic_write(target, mode=FILE_MODE, sync_folder=True) as out:
        sha256, size = _copy_parts(parts, out, progress, f"Assembling {target.name}")
        problem = _mismatch(source, sha256, size)
        if problem is not None:
            raise ConfigurationError(
                f"the file assembled from {', '.join(source.packages)} is corrupt: {problem}; "
                "reinstall those packages"
            )
    return sha256


def _copy_parts(
    parts: Sequence[Traversable], out: IO[bytes], progress: bool, label: str
) -> tuple[str, int]:
    """Write the parts' bytes to ``out`` in order; return their sha256 and total size."""
    digest = _new_digest()
    size = 0
    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(as_file(part)) for part in parts]
        total = sum(path.stat().st_size for path in paths)
        bar = stack.enter_context(_progress_bar(progress))
        task = bar.add_task(label, total=total)
        for path in paths:
            for chunk in _chunks(path):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                bar.advance(task, len(chunk))
    return digest.hexdigest(), size


# --- file sources ------------------------------------------------------------------------


def _ensure_from_file(name: str, source: ModelSource, models_dir: Path, progress: bool) -> Path:
    """``source.path`` as configured, verified when ``source.sha256`` or ``source.size`` is set."""
    if source.path is None:
        raise ConfigurationError(f"backing model {name!r}: a file source needs a path")
    path = source.path.expanduser()
    if not path.is_file():
        raise ConfigurationError(f"backing model {name!r}: model file {path} does not exist")
    _verify_once(name, source, models_dir, path, progress)
    return path


# --- Hugging Face sources ----------------------------------------------------------------


def _ensure_from_hub(name: str, source: ModelSource, models_dir: Path, progress: bool) -> Path:
    """Fetch (or find in the cache) ``source.filename`` of ``source.repo`` and verify it."""
    if not source.repo or not source.filename:
        raise ConfigurationError(
            f"backing model {name!r}: a huggingface source needs both repo and filename"
        )
    what = f"{source.filename} from {source.repo}@{source.revision or 'main'}"
    cache_dir = models_dir / "hf"
    try:
        fetched = huggingface_hub.hf_hub_download(
            repo_id=source.repo,
            filename=source.filename,
            revision=source.revision,
            cache_dir=cache_dir,
            local_files_only=_hub_offline(),
        )
    except LocalEntryNotFoundError as exc:
        raise ConfigurationError(
            f"backing model {name!r}: {what} is not in the cache at {cache_dir} and the Hub "
            f"cannot be reached{' (HF_HUB_OFFLINE is set)' if _hub_offline() else ''}"
        ) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise ConfigurationError(
            f"backing model {name!r}: the Hub has no {what} (or it is not accessible): {exc}"
        ) from exc
    except (HfHubHTTPError, HFValidationError, OSError) as exc:
        raise ConfigurationError(f"backing model {name!r}: cannot fetch {what}: {exc}") from exc
    path = Path(fetched)
    _verify_once(name, source, models_dir, path, progress)
    return path


def _hub_offline() -> bool:
    """Whether Hub offline mode is on, reading ``HF_HUB_OFFLINE`` now, not at import time."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE_VALUES or hf_constants.is_offline_mode()


# --- verification and its sidecar --------------------------------------------------------


def _verify_once(
    name: str, source: ModelSource, models_dir: Path, path: Path, progress: bool
) -> None:
    """Check ``path`` against the configured size and sha256, hashing it only when needed.

    The digest is computed only if ``source.sha256`` is set and the sidecar does not
    already vouch for the file as it is now. Raises ConfigurationError on a mismatch
    (the file is left alone: it is not ours to delete).
    """
    if source.sha256 is None:
        if source.size is not None and path.stat().st_size != source.size:
            raise ConfigurationError(
                f"backing model {name!r}: {path} has the wrong size: "
                f"expected {source.size} bytes, got {path.stat().st_size}"
            )
        return
    sidecar = sidecar_path(name, source, models_dir)
    origin = f"{source.kind}:{path.resolve()}"
    if _recorded(sidecar, path, source, origin):
        return
    sha256 = _hash_file(path, progress, f"Verifying {path.name}")
    problem = _mismatch(source, sha256, path.stat().st_size)
    if problem is not None:
        raise ConfigurationError(
            f"backing model {name!r}: {path} is not the expected file: {problem}"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    _write_sidecar(sidecar, path, sha256, origin)


def _mismatch(source: ModelSource, sha256: str, size: int) -> str | None:
    """Describe how ``sha256``/``size`` differ from the configured ones, or None if they agree."""
    if source.size is not None and size != source.size:
        return f"expected {source.size} bytes, got {size}"
    expected = source.sha256.lower() if source.sha256 is not None else None
    if expected is not None and sha256 != expected:
        return f"expected sha256 {expected}, got {sha256}"
    return None


def _recorded(sidecar: Path, path: Path, source: ModelSource, origin: str) -> bool:
    """Whether ``sidecar`` records ``path`` as verified, unchanged since, and as configured.

    True only if the record names the same path and origin, its size and ``mtime_ns``
    equal the file's current ones, and its sha256 and size agree with ``source``.
    """
    record = _read_sidecar(sidecar)
    if record is None:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    return (
        record.get("version") == SIDECAR_VERSION
        and record.get("path") == str(path)
        and record.get("origin") == origin
        and record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(record.get("sha256"), str)
        and _mismatch(source, str(record["sha256"]), stat.st_size) is None
    )


def _read_sidecar(sidecar: Path) -> dict[str, Any] | None:
    """The sidecar's JSON object, or None if it is missing or unreadable."""
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_sidecar(sidecar: Path, path: Path, sha256: str, origin: str) -> None:
    """Record ``path`` (as it is now) as having digest ``sha256``; written atomically."""
    stat = path.stat()
    record = {
        "version": SIDECAR_VERSION,
        "path": str(path),
        "origin": origin,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": sha256,
    }
    with atomic_write(sidecar, mode=FILE_MODE) as out:
        out.write((json.dumps(record, indent=2) + "\n").encode("utf-8"))


# --- small helpers -----------------------------------------------------------------------


def _new_digest() -> _Digest:
    """A fresh sha256 hasher (one place, so tests can watch hashing happen)."""
    return hashlib.sha256()


def _hash_file(path: Path, progress: bool, label: str) -> str:
    """The sha256 of ``path``'s contents, read in chunks with a progress bar."""
    digest = _new_digest()
    with _progress_bar(progress) as bar:
        task: TaskID = bar.add_task(label, total=path.stat().st_size)
        for chunk in _chunks(path):
            digest.update(chunk)
            bar.advance(task, len(chunk))
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    """``path``'s bytes, :data:`CHUNK_SIZE` at a time."""
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            yield chunk


def _progress_bar(enabled: bool) -> Progress:
    """A byte progress bar (size, speed, time left) on stderr; inert when not ``enabled``."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
