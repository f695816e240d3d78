"""Fixtures of the fuzz tests, and their marker."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.fuzz.app import build_app, funded_key, settings_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: generated requests, bounded in number and seeded")


@pytest.fixture(scope="module")
def fuzz_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def fuzz_key(fuzz_data_dir: Path) -> str:
    """A key of a funded account, created before the app starts."""
    return funded_key(settings_for(fuzz_data_dir))


@pytest.fixture(scope="module")
def fuzz_app(fuzz_data_dir: Path, fuzz_key: str) -> FastAPI:
    """One app for a module's operations; whoever starts it stops it."""
    return build_app(settings_for(fuzz_data_dir))
