"""Accounts' own concurrency limits: overrides of the configured ones, per public model.

An override names a public model id, or ``ALL_MODELS`` for every model of the account;
``deepwell.limits.policy.configured`` decides which applies. The store knows no settings,
so it does not check that a model id is served: the CLI does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from deepwell.billing.balances import UnknownAccount
from deepwell.limits.policy import ALL_MODELS
from deepwell.store.db import Database
from deepwell.store.tables import NAME_LENGTH, Account, ConcurrencyLimit


class LimitStore:
    """Per-account concurrency overrides over a :class:`Database`. Every call reads or
    writes the database; a server caching :meth:`all` sees changes when it reloads."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def set(self, account: str, concurrency: int | None, model: str = ALL_MODELS) -> None:
        """Limit the account named ``account`` to ``concurrency`` open requests on
        ``model`` (a public model id, or ``ALL_MODELS``); None removes that override.

        Raises UnknownAccount if no account has that name, ValueError for a concurrency
        under 1 or an empty or overlong model id.
        """
        if concurrency is not None and concurrency < 1:
            raise ValueError("the concurrency must be at least 1")
        model = _check_model(model)
        try:
            await self._set_once(account, concurrency, model)
        except IntegrityError:
            # Another process added the same override first: now it exists.
            await self._set_once(account, concurrency, model)

    async def overrides(self, account_id: int) -> dict[str, int]:
        """The account's overrides, by model id (``ALL_MODELS`` included); empty if none."""
        statement = select(ConcurrencyLimit).where(ConcurrencyLimit.account_id == account_id)
        async with self._database.session() as session:
            rows = (await session.scalars(statement.order_by(ConcurrencyLimit.model))).all()
        return {row.model: row.concurrency for row in rows}

    async def all(self) -> dict[int, dict[str, int]]:
        """Every account's overrides, by account id; accounts without any are absent."""
        statement = select(ConcurrencyLimit).order_by(
            ConcurrencyLimit.account_id, ConcurrencyLimit.model
        )
        async with self._database.session() as session:
            rows = (await session.scalars(statement)).all()
        found: dict[int, dict[str, int]] = {}
        for row in rows:
            found.setdefault(row.account_id, {})[row.model] = row.concurrency
        return found

    async def _set_once(self, account: str, concurrency: int | None, model: str) -> None:
        async with self._database.session() as session, session.begin():
            account_id = await session.scalar(
                select(Account.id).where(Account.name == account.strip())
            )
            if account_id is None:
                raise UnknownAccount(account)
            if concurrency is None:
                await session.execute(
                    delete(ConcurrencyLimit).where(
                        ConcurrencyLimit.account_id == account_id, ConcurrencyLimit.model == model
                    )
                )
                return
            row = await session.get(ConcurrencyLimit, (account_id, model))
            if row is None:
                row = ConcurrencyLimit(account_id=account_id, model=model)
                session.add(row)
            row.concurrency = concurrency
            row.updated_at = datetime.now(UTC)


def _check_model(model: str) -> str:
    """``model`` stripped; ValueError if it is empty or longer than the schema allows."""
    stripped = model.strip()
    if not stripped:
        raise ValueError("the model id must not be empty")
    if len(stripped) > NAME_LENGTH:
        raise ValueError(f"the model id must be at most {NAME_LENGTH} characters")
    return stripped
