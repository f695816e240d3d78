"""The relational schema of deepwell, as SQLAlchemy 2 declarative models.

The schema is owned by the Alembic migrations in ``deepwell/store/migrations``; these
models must describe exactly what the migrations create. Every timestamp is stored as
a timezone-aware UTC datetime (see :class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAME_LENGTH = 128
"""The longest account name or key label the schema accepts."""


class UTCDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that always round-trips as an aware UTC datetime.

    SQLite has no time zone support and hands back naive values; those are UTC by
    construction, because only aware datetimes (converted to UTC) are ever written.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base of every deepwell table."""

    # Deterministic constraint names, so later migrations can alter them on every dialect.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Account(Base):
    """A customer of the platform: keys, balances and limits belong to it."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key of an account. Only the SHA-256 of the key is stored, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Balance(Base):
    """An account's money in one currency, in billionths of the unit (see ``billing``).

    ``held_nanos`` is the sum of the account's open holds in that currency: what running
    requests may still cost. What a new request may hold is
    ``granted_nanos + topped_up_nanos - held_nanos``.
    """

    __tablename__ = "balances"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    granted_nanos: Mapped[int] = mapped_column(BigInteger)
    topped_up_nanos: Mapped[int] = mapped_column(BigInteger)
    held_nanos: Mapped[int] = mapped_column(BigInteger)


class Hold(Base):
    """The worst-case cost of one running request, reserved from its account's balance."""

    __tablename__ = "holds"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_nanos: Mapped[int] = mapped_column(BigInteger)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Credit(Base):
    """Money added to an account: a top-up, or a grant (spent first)."""

    __tablename__ = "credits"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_nanos: Mapped[int] = mapped_column(BigInteger)
    granted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerEntry(Base):
    """One settled request: its tokens, the prices it was charged at, and its cost.

    Prices are per million tokens and, like the cost, in billionths of ``currency``.
    ``charged`` is false where billing was off: the cost is recorded, not deducted.
    Never the prompt, never the key.
    """

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    key_id: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    backing: Mapped[str] = mapped_column(String(NAME_LENGTH))
    currency: Mapped[str] = mapped_column(String(3))
    hit_tokens: Mapped[int] = mapped_column(Integer)
    miss_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    reasoning_tokens: Mapped[int] = mapped_column(Integer)
    hit_price_nanos: Mapped[int] = mapped_column(BigInteger)
    miss_price_nanos: Mapped[int] = mapped_column(BigInteger)
    output_price_nanos: Mapped[int] = mapped_column(BigInteger)
    price_window: Mapped[str | None] = mapped_column(String(64))
    cost_nanos: Mapped[int] = mapped_column(BigInteger)
    charged: Mapped[bool] = mapped_column(Boolean)
    finish_reason: Mapped[str] = mapped_column(String(40))
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConcurrencyLimit(Base):
    """An account's own limit on the requests it may have open at once on one public
    model, or on every model when ``model`` is ``"*"`` (see ``deepwell.limits.policy``)."""

    __tablename__ = "concurrency_limits"
    __table_args__ = (CheckConstraint("concurrency >= 1", name="concurrency_positive"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    concurrency: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
