"""The database handle of deepwell: an async SQLAlchemy engine, migrated on open.

``open_database`` is the only way to get a :class:`Database`; it guarantees the schema
is at the newest Alembic revision before anything reads or writes. Migrations are found
next to this module (``deepwell/store/migrations``), so no ``alembic.ini`` is needed.

SQLite files are opened in WAL mode with a busy timeout, so a CLI process and a running
server can use the same file at once. Nothing here is SQLite-specific beyond that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The Alembic script directory shipped inside the package."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long an SQLite connection waits for another process's write lock."""


class Database:
    """An open, migrated database: an async engine and a session factory over it.

    Sessions from :meth:`session` do not expire objects on commit, so returned rows stay
    readable after the transaction ends. Call :meth:`close` (or use ``async with``) when
    done; it releases every pooled connection.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        """A new session; use it as ``async with db.session() as s, s.begin(): ...``."""
        return self.sessions()

    async def close(self) -> None:
        """Close every pooled connection. The Database must not be used afterwards."""
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_database(url: str) -> Database:
    """Connect to ``url`` (an async driver URL), migrate it to head, and return it.

    For a file-backed SQLite URL the parent directory is created first. On failure the
    engine is disposed and the error propagates.
    """
    parsed = make_url(url)
    if _is_sqlite(parsed):
        _create_parent_dir(parsed)
    engine = create_async_engine(parsed)
    if _is_sqlite(parsed):
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_to_head)
    except BaseException:
        await engine.dispose()
        raise
    return Database(engine)


def upgrade_to_head(connection: Connection) -> None:
    """Apply every pending migration on an open synchronous ``connection``."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def alembic_config() -> Config:
    """An Alembic ``Config`` built in code, pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _create_parent_dir(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    """Per-connection SQLite setup: WAL, a busy timeout, and enforced foreign keys.

    ``synchronous=NORMAL`` is SQLite's advice for WAL: a commit is not flushed to the disk
    one by one but at checkpoints. The database cannot be corrupted that way, and a
    process that crashes loses nothing (the WAL is in the operating system's cache); a
    power cut may lose the last moments' commits, which are then requests not charged and
    holds a restart releases anyway."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
