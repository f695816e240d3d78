"""Accounts' balances: reading them, and adding money (top-ups and grants)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deepwell.billing.prices import from_nanos, to_nanos
from deepwell.store.db import Database
from deepwell.store.tables import Account, Balance, Credit


class UnknownAccount(LookupError):
    """No account has that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no account named {name!r}")


@dataclass(frozen=True, slots=True)
class BalanceInfo:
    """An account's money in one currency, exact. ``held`` is reserved by running requests."""

    currency: str
    granted: Decimal
    topped_up: Decimal
    held: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.granted + self.topped_up


@dataclass(frozen=True, slots=True)
class AccountBalances:
    account_id: int
    account: str
    balances: tuple[BalanceInfo, ...]


class Balances:
    """Balances and credits over a :class:`Database`. ``written``, when given, is
    awaited before each read: it returns once the settlements made so far are in the
    database (see ``billing.reserves``)."""

    def __init__(
        self, database: Database, written: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._database = database
        self._written = written

    async def of(self, account_id: int) -> list[BalanceInfo]:
        """Every currency the account has money in, by currency code."""
        await self._settled()
        statement = (
            select(Balance).where(Balance.account_id == account_id).order_by(Balance.currency)
        )
        async with self._database.session() as session:
            rows = (await session.scalars(statement)).all()
        return [_info(row) for row in rows]

    async def named(self, name: str) -> AccountBalances:
        """The balances of the account ``name``; UnknownAccount if there is none."""
        async with self._database.session() as session:
            account = await _account(session, name)
        return AccountBalances(account.id, account.name, tuple(await self.of(account.id)))

    async def all(self) -> list[AccountBalances]:
        """Every account with its balances, by name."""
        await self._settled()
        async with self._database.session() as session:
            accounts = (await session.scalars(select(Account).order_by(Account.name))).all()
            rows = (await session.scalars(select(Balance).order_by(Balance.currency))).all()
        by_account: dict[int, list[BalanceInfo]] = {}
        for row in rows:
            by_account.setdefault(row.account_id, []).append(_info(row))
        return [AccountBalances(a.id, a.name, tuple(by_account.get(a.id, ()))) for a in accounts]

    async def _settled(self) -> None:
        if self._written is not None:
            await self._written()

    async def credit(
        self, name: str, amount: Decimal, currency: str, *, granted: bool
    ) -> BalanceInfo:
        """Add ``amount`` (positive, at most nine decimals) to the account ``name``: to
        its granted balance, spent first, or to its topped-up one. Returns the new balance."""
        if amount <= 0:
            raise ValueError("the amount must be positive")
        nanos = to_nanos(amount)
        try:
            return await self._credit_once(name, nanos, currency, granted=granted)
        except IntegrityError:
            # Another process created the balance row first: now it exists.
            return await self._credit_once(name, nanos, currency, granted=granted)

    async def _credit_once(
        self, name: str, nanos: int, currency: str, *, granted: bool
    ) -> BalanceInfo:
        async with self._database.session() as session, session.begin():
            account = await _account(session, name)
            await _ensure_row(session, account.id, currency)
            column = Balance.granted_nanos if granted else Balance.topped_up_nanos
            await session.execute(
                update(Balance)
                .where(Balance.account_id == account.id, Balance.currency == currency)
                .values({column: column + nanos})
            )
            session.add(
                Credit(
                    account_id=account.id,
                    currency=currency,
                    amount_nanos=nanos,
                    granted=granted,
                    created_at=datetime.now(UTC),
                )
            )
            row = await session.get(Balance, (account.id, currency), populate_existing=True)
            assert row is not None
            return _info(row)


async def _account(session: AsyncSession, name: str) -> Account:
    account = await session.scalar(select(Account).where(Account.name == name.strip()))
    if account is None:
        raise UnknownAccount(name)
    return account


async def _ensure_row(session: AsyncSession, account_id: int, currency: str) -> None:
    if await session.get(Balance, (account_id, currency)) is None:
        session.add(
            Balance(
                account_id=account_id,
                currency=currency,
                granted_nanos=0,
                topped_up_nanos=0,
                held_nanos=0,
            )
        )
        await session.flush()


def _info(row: Balance) -> BalanceInfo:
    return BalanceInfo(
        row.currency,
        from_nanos(row.granted_nanos),
        from_nanos(row.topped_up_nanos),
        from_nanos(row.held_nanos),
    )
