"""Choosing an engine per backing model, from a configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepwell.engine.loader import load_engine
from deepwell.engine.remote.chat import ChatEngine
from deepwell.settings import DEFAULT_MODEL, EmbeddedEngine, RemoteEngine, Settings


def test_the_embedded_engine_is_the_default() -> None:
    assert isinstance(Settings().backing_models[DEFAULT_MODEL].engine, EmbeddedEngine)


async def test_a_remote_backing_model_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "deepwell.toml"
    config.write_text(
        '[backing_models.up]\nreasoning = { style = "native" }\n'
        '[backing_models.up.engine]\nkind = "remote"\napi = "chat"\n'
        'urls = ["http://10.0.0.1:8000/", "http://10.0.0.2:8000"]\nmax_in_flight = 16\n'
    )
    settings = Settings(config_file=config, data_dir=tmp_path)
    remote = settings.backing_models["up"].engine
    assert isinstance(remote, RemoteEngine)
    engine = load_engine("up", settings)
    assert isinstance(engine, ChatEngine)
    health = await engine.health()
    assert health.sequences_total == 32
    assert set(health.replicas) == {"http://10.0.0.1:8000", "http://10.0.0.2:8000"}  # type: ignore[attr-defined]
    await engine.close()


def test_a_remote_engine_needs_its_urls() -> None:
    with pytest.raises(ValueError, match="urls"):
        RemoteEngine(kind="remote", urls=[])
