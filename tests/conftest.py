"""Fixtures shared by every test: the databases the store and billing tests run on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_ENV = "DEEPWELL_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL database the tests may wipe (``eval "$(scripts/postgres)"`` sets it).

    Skipped where none is configured, except in CI, where that is a failure.
    """
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set; .ci/run starts PostgreSQL and sets it")
        pytest.skip(f'{POSTGRES_ENV} is not set (run: eval "$(scripts/postgres)")')
    return url


def wipe_postgres(url: str) -> None:
    """Drop every table of the database at ``url``, so migrations start from nothing."""

    async def wipe() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    asyncio.run(wipe())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, then the PostgreSQL test database wiped."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'deepwell.db'}"
    url: str = request.getfixturevalue("postgres_url")
    wipe_postgres(url)
    return url
