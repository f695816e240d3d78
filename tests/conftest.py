"""Fixtures shared by every test: the databases the store and billing tests run on, and
the Redis of the shared limits and key revocations."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_ENV = "DEEPWELL_TEST_POSTGRES_URL"
REDIS_ENV = "DEEPWELL_TEST_REDIS_URL"


def service_url(variable: str, service: str, script: str) -> str:
    """The URL in ``variable``. Skipped where it is not set, except in CI (which starts
    the service and sets it), where that is a failure."""
    url = os.environ.get(variable)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{variable} is not set; .ci/run starts {service} and sets it")
        pytest.skip(f'{variable} is not set (run: eval "$({script})")')
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL database the tests may wipe (``eval "$(scripts/postgres)"`` sets it)."""
    return service_url(POSTGRES_ENV, "PostgreSQL", "scripts/postgres")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis the tests may write to (``eval "$(scripts/redis)"`` sets it)."""
    return service_url(REDIS_ENV, "Redis", "scripts/redis")


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
