"""open_database: migrations, SQLite setup, and schema parity with the models."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from deepwell.store.db import MIGRATIONS_DIR, alembic_config, open_database
from deepwell.store.tables import Base

TABLES = [
    "accounts",
    "alembic_version",
    "api_keys",
    "balances",
    "concurrency_limits",
    "credits",
    "holds",
    "ledger",
]
"""Every table the migrations create, by name."""


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _schema_diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def _table_names(connection: Connection) -> list[str]:
    return sorted(inspect(connection).get_table_names())


async def test_creates_parent_dir_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "deepwell.db"
    database = await open_database(_url(path))
    try:
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(_table_names)
    finally:
        await database.close()
    assert path.is_file()
    assert tables == TABLES


async def test_migrations_run_twice_are_idempotent(database_url: str) -> None:
    for _ in range(2):
        database = await open_database(database_url)
        async with database.engine.connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        await database.close()
        assert version == "0003"


def _migrate(direction: str, revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    return run


async def test_limits_migrate_up_and_down_on_existing_data(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate("upgrade", "0002"))
            await connection.execute(
                text("INSERT INTO accounts (name, created_at) VALUES ('alice', CURRENT_TIMESTAMP)")
            )
    finally:
        await engine.dispose()
    async with await open_database(database_url) as database:
        async with database.engine.begin() as connection:
            assert "concurrency_limits" in await connection.run_sync(_table_names)
            assert await connection.scalar(text("SELECT name FROM accounts")) == "alice"
            await connection.run_sync(_migrate("downgrade", "0002"))
        async with database.engine.connect() as connection:
            assert "concurrency_limits" not in await connection.run_sync(_table_names)


async def test_models_match_migrations(database_url: str) -> None:
    async with (
        await open_database(database_url) as database,
        database.engine.connect() as connection,
    ):
        diff = await connection.run_sync(_schema_diff)
        tables = await connection.run_sync(_table_names)
    assert diff == []
    assert tables == TABLES


async def test_sqlite_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "deepwell.db"
    async with await open_database(_url(path)) as database, database.engine.connect() as connection:
        timeout = await connection.scalar(text("PRAGMA busy_timeout"))
        foreign_keys = await connection.scalar(text("PRAGMA foreign_keys"))
    assert timeout is not None
    assert timeout > 0
    assert foreign_keys == 1
    with sqlite3.connect(path) as plain:
        (mode,) = plain.execute("PRAGMA journal_mode").fetchone()
    plain.close()
    assert mode == "wal"


async def test_in_memory_database_opens() -> None:
    url = "sqlite+aiosqlite:///:memory:"
    async with await open_database(url) as database, database.session() as session:
        assert await session.scalar(text("SELECT count(*) FROM accounts")) == 0


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_accounts_and_keys.py").is_file()
