"""``AccountAdmin``: what the admin API and the console do with accounts, keys, money and
usage, over the same stores the CLI uses (``KeyStore``, ``Balances``, the usage reports).

Every method that takes ``account`` keeps to that account when it is given (an account
key's view) and sees every account when it is None (the admin's). The database is opened
on first use, so an app that never serves the console never opens it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

from deepwell.accounts.keys import CreatedKey, KeyInfo, KeyStore
from deepwell.billing.balances import AccountBalances, BalanceInfo, Balances
from deepwell.billing.usage import (
    CreditRow,
    UsageBucket,
    UsageQuery,
    credit_history,
    settled_request,
    usage_buckets,
)
from deepwell.store.db import Database


class UnknownKey(LookupError):
    """No key has that id (in the account asked about)."""


class AccountAdmin:
    """Accounts, keys, balances, top-ups and usage; see the module's docstring."""

    def __init__(
        self,
        database: Callable[[], Awaitable[Database]],
        on_revoke: Callable[[str], Awaitable[None]] | None = None,
        written: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._open = database
        self._on_revoke = on_revoke
        self._written = written
        self._database: Database | None = None
        self._lock = asyncio.Lock()

    async def _db(self) -> Database:
        if self._database is None:
            async with self._lock:
                if self._database is None:
                    self._database = await self._open()
        return self._database

    async def keys(self, account: str | None = None) -> list[KeyInfo]:
        return await KeyStore(await self._db()).list(account)

    async def create_key(self, account: str, name: str | None = None) -> CreatedKey:
        """A new key of ``account`` (created if new); ValueError for a bad name."""
        return await KeyStore(await self._db()).create(account, name)

    async def revoke_key(self, key_id: str, *, account: str | None = None) -> None:
        """Revoke ``key_id``; UnknownKey if there is none (in ``account``, if given)."""
        store = KeyStore(await self._db())
        if account is not None and all(k.key_id != key_id for k in await store.list(account)):
            raise UnknownKey(key_id)
        if not await store.revoke(key_id):
            raise UnknownKey(key_id)
        if self._on_revoke is not None:
            await self._on_revoke(key_id)

    async def accounts(self) -> list[AccountBalances]:
        return await (await self._balances()).all()

    async def balances(self, account: str) -> AccountBalances:
        """UnknownAccount if there is no such account."""
        return await (await self._balances()).named(account)

    async def top_up(
        self, account: str, amount: Decimal, currency: str, *, granted: bool
    ) -> BalanceInfo:
        """Add money; UnknownAccount, or ValueError for an amount that is not positive or
        has more than nine decimals."""
        balances = await self._balances()
        return await balances.credit(account, amount, currency, granted=granted)

    async def top_ups(self, account: str | None = None) -> list[CreditRow]:
        return await credit_history(await self._db(), account)

    async def usage(self, query: UsageQuery) -> list[UsageBucket]:
        database = await self._db()
        await self._settled()
        return await usage_buckets(database, query)

    async def settled(self, request_id: str, account: str) -> UsageBucket | None:
        """What the request ``request_id`` of ``account`` cost, once it is settled."""
        database = await self._db()
        await self._settled()
        return await settled_request(database, request_id, account)

    async def _balances(self) -> Balances:
        return Balances(await self._db(), written=self._written)

    async def _settled(self) -> None:
        """Wait for the settlements made so far to be in the ledger."""
        if self._written is not None:
            await self._written()
