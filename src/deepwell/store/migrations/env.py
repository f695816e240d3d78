"""Alembic environment of deepwell.

deepwell runs its migrations itself (``deepwell.store.db.open_database``): it passes an
open synchronous connection in ``config.attributes["connection"]`` and no ini file is
involved. When that attribute is absent (the ``alembic`` command line, with
``sqlalchemy.url`` set), a connection is made from ``sqlalchemy.url``; async URLs are
supported. Offline mode renders SQL for ``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from deepwell.store.tables import Base

TARGET_METADATA = Base.metadata


def _configure(connection: Connection) -> None:
    """Run every pending migration on ``connection``."""
    context.configure(
        connection=connection,
        target_metadata=TARGET_METADATA,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url() -> None:
    """Connect to ``sqlalchemy.url`` (an async driver URL) and migrate."""
    section = context.config.get_section(context.config.config_ini_section, {})
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
    finally:
        await engine.dispose()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure(connection)
    else:
        asyncio.run(_run_from_url())


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=TARGET_METADATA,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
