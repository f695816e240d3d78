"""API keys: creation, authentication, listing and revocation.

A key is ``sk-`` followed by 32 lowercase hex digits. Only its SHA-256 (hex) and its
last four characters are stored; the key itself is shown once, at creation, and never
logged. Every call reads the database, so a key created or revoked by another process
(the CLI) takes effect on a running server immediately.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deepwell.store.db import Database
from deepwell.store.tables import NAME_LENGTH, Account, ApiKey
from deepwell.vocabulary import Caller

KEY_PREFIX = "sk-"
KEY_ID_PREFIX = "key_"
DEFAULT_ACCOUNT = "default"


def generate_key() -> str:
    """A new secret API key: ``sk-`` and 32 lowercase hex digits from ``secrets``."""
    return KEY_PREFIX + secrets.token_hex(16)


def hash_key(key: str) -> str:
    """The SHA-256 of ``key`` as 64 lowercase hex digits: what the database stores."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _generate_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(8)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_name(value: str, what: str) -> str:
    """``value`` stripped; ValueError if it is empty or longer than the schema allows."""
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"{what} must not be empty")
    if len(stripped) > NAME_LENGTH:
        raise ValueError(f"{what} must be at most {NAME_LENGTH} characters")
    return stripped


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just created. ``key`` is the secret; it is kept out of ``repr``."""

    key_id: str
    key: str = field(repr=False)
    account: str
    name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known about a stored key; never the key itself."""

    key_id: str
    account: str
    name: str | None
    last4: str
    created_at: datetime
    revoked_at: datetime | None


class KeyStore:
    """API keys and the accounts that own them, persisted in a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(self, account: str, name: str | None = None) -> CreatedKey:
        """Create a key for ``account``, creating the account if it does not exist.

        Raises ValueError for an empty or overlong account name or label.
        """
        account = _check_name(account, "account name")
        label = None if name is None else _check_name(name, "key name")
        try:
            return await self._create_once(account, label)
        except IntegrityError:
            # Another process created the same account concurrently: now it exists.
            return await self._create_once(account, label)

    async def authenticate(self, key: str) -> Caller | None:
        """The caller owning ``key``, or None if the key is unknown or revoked."""
        digest = hash_key(key)
        statement = (
            select(ApiKey, Account)
            .join(Account, ApiKey.account_id == Account.id)
            .where(ApiKey.key_hash == digest)
        )
        async with self._database.session() as session:
            row = (await session.execute(statement)).one_or_none()
        if row is None:
            return None
        api_key, owner = row
        if not secrets.compare_digest(api_key.key_hash, digest):
            return None
        if api_key.revoked_at is not None:
            return None
        return Caller(account_id=owner.id, account=owner.name, key_id=api_key.id)

    async def list(self, account: str | None = None) -> builtins.list[KeyInfo]:
        """Every key (revoked ones included), oldest first; only ``account``'s if given."""
        statement = (
            select(ApiKey, Account.name)
            .join(Account, ApiKey.account_id == Account.id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        if account is not None:
            statement = statement.where(Account.name == account.strip())
        async with self._database.session() as session:
            rows = (await session.execute(statement)).all()
        return [_key_info(api_key, owner) for api_key, owner in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke the key ``key_id``; False if there is no such key.

        Revoking a revoked key succeeds and keeps the first revocation time.
        """
        async with self._database.session() as session, session.begin():
            api_key = await session.get(ApiKey, key_id)
            if api_key is None:
                return False
            if api_key.revoked_at is None:
                api_key.revoked_at = _now()
        return True

    async def ensure_default_key(self) -> CreatedKey | None:
        """On an empty database, create account ``default`` with one key and return it.

        Returns None if any account exists (or another process created one first).
        """
        try:
            async with self._database.session() as session, session.begin():
                if await session.scalar(select(Account.id).limit(1)) is not None:
                    return None
                owner = Account(name=DEFAULT_ACCOUNT, created_at=_now())
                session.add(owner)
                await session.flush()
                return await _add_key(session, owner, None)
        except IntegrityError:
            return None

    async def _create_once(self, account: str, name: str | None) -> CreatedKey:
        async with self._database.session() as session, session.begin():
            owner = await _get_or_add_account(session, account)
            return await _add_key(session, owner, name)


async def _get_or_add_account(session: AsyncSession, name: str) -> Account:
    owner = await session.scalar(select(Account).where(Account.name == name))
    if owner is None:
        owner = Account(name=name, created_at=_now())
        session.add(owner)
        await session.flush()
    return owner


async def _add_key(session: AsyncSession, owner: Account, name: str | None) -> CreatedKey:
    """Add a new key for ``owner`` to ``session`` (flushed, not committed)."""
    key = generate_key()
    row = ApiKey(
        id=_generate_key_id(),
        account_id=owner.id,
        name=name,
        key_hash=hash_key(key),
        last4=key[-4:],
        created_at=_now(),
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    return CreatedKey(
        key_id=row.id, key=key, account=owner.name, name=name, created_at=row.created_at
    )


def _key_info(api_key: ApiKey, account: str) -> KeyInfo:
    return KeyInfo(
        key_id=api_key.id,
        account=account,
        name=api_key.name,
        last4=api_key.last4,
        created_at=api_key.created_at,
        revoked_at=api_key.revoked_at,
    )
