"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``DEEPWELL_*`` variable of the surrounding shell reaches ``Settings()``."""
    for name in list(os.environ):
        if name.upper().startswith("DEEPWELL_"):
            monkeypatch.delenv(name)
