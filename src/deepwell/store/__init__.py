"""Persistent state: SQLAlchemy (async) over SQLite or PostgreSQL, migrated by Alembic."""
