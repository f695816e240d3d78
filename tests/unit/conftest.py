"""Fixtures shared by the unit tests, and a Redis for those that need one
(``eval "$(scripts/redis)"`` sets its URL)."""

from __future__ import annotations

import os

import pytest

REDIS_ENV = "DEEPWELL_TEST_REDIS_URL"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``DEEPWELL_*`` variable of the surrounding shell reaches ``Settings()``."""
    for name in list(os.environ):
        if name.upper().startswith("DEEPWELL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Skipped where no Redis is configured, except in CI, where that is a failure."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{REDIS_ENV} is not set; .ci/run starts Redis and sets it")
        pytest.skip(f'{REDIS_ENV} is not set (run: eval "$(scripts/redis)")')
    return url
