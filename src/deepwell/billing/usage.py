"""Usage reports from the ledger: tokens, cost and cache-hit ratio per day and model, or per
hour or day, account, key and model; and the history of credits (top-ups and grants)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import Select, select

from deepwell.billing.prices import from_nanos
from deepwell.store.db import Database
from deepwell.store.tables import Account, Credit, LedgerEntry


@dataclass(slots=True, kw_only=True)
class Sums:
    """The sums of some settled requests."""

    requests: int = 0
    hit_tokens: int = 0
    miss_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int = field(default=0, repr=False)

    @property
    def cost(self) -> Decimal:
        return from_nanos(self.cost_nanos)

    @property
    def cache_hit_ratio(self) -> float:
        prompt = self.hit_tokens + self.miss_tokens
        return self.hit_tokens / prompt if prompt else 0.0

    def add(self, entry: LedgerEntry) -> None:
        self.requests += 1
        self.hit_tokens += entry.hit_tokens
        self.miss_tokens += entry.miss_tokens
        self.output_tokens += entry.output_tokens
        self.reasoning_tokens += entry.reasoning_tokens
        self.cost_nanos += entry.cost_nanos


@dataclass(slots=True)
class UsageRow(Sums):
    """One UTC day of one model (and currency): the sums of its settled requests."""

    day: date
    model: str
    currency: str


async def usage_report(
    database: Database,
    *,
    account: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[UsageRow]:
    """Rows by day, then model, for requests started from ``since`` to ``until``
    (both UTC days, inclusive), of ``account`` or of every account."""
    rows: dict[tuple[date, str, str], UsageRow] = {}
    async with database.session() as session:
        result = await session.stream(_query(account, since, until))
        async for entry in result.scalars():
            day = entry.started_at.astimezone(UTC).date()
            key = (day, entry.model, entry.currency)
            (rows.get(key) or rows.setdefault(key, UsageRow(*key))).add(entry)
    return [rows[key] for key in sorted(rows)]


def _query(account: str | None, since: date | None, until: date | None) -> Select[LedgerEntry]:
    statement = select(LedgerEntry)
    if account is not None:
        statement = statement.join(Account, LedgerEntry.account_id == Account.id).where(
            Account.name == account.strip()
        )
    if since is not None:
        statement = statement.where(LedgerEntry.started_at >= _midnight(since))
    if until is not None:
        statement = statement.where(LedgerEntry.started_at < _midnight(until + timedelta(days=1)))
    return statement.order_by(LedgerEntry.started_at)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


Period = Literal["hour", "day"]


@dataclass(slots=True)
class UsageBucket(Sums):
    """One hour or UTC day of one account's key on one model (and currency): the sums of
    its settled requests. ``key_id`` is None for requests made without a key."""

    start: datetime
    account: str
    key_id: str | None
    model: str
    currency: str


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Which settled requests to sum, by when they started (``since`` inclusive,
    ``until`` exclusive, aware datetimes), and in which buckets."""

    since: datetime
    until: datetime
    period: Period = "day"
    account: str | None = None
    key_id: str | None = None
    model: str | None = None


async def usage_buckets(database: Database, query: UsageQuery) -> list[UsageBucket]:
    """The sums by period, account, key and model, in that order; callers add up
    whichever dimensions they do not show."""
    buckets: dict[tuple[datetime, str, str, str, str], UsageBucket] = {}
    statement = (
        select(LedgerEntry, Account.name)
        .join(Account, LedgerEntry.account_id == Account.id)
        .where(LedgerEntry.started_at >= query.since, LedgerEntry.started_at < query.until)
        .order_by(LedgerEntry.started_at)
    )
    if query.account is not None:
        statement = statement.where(Account.name == query.account.strip())
    if query.key_id is not None:
        statement = statement.where(LedgerEntry.key_id == query.key_id)
    if query.model is not None:
        statement = statement.where(LedgerEntry.model == query.model)
    async with database.session() as session:
        result = await session.stream(statement)
        async for entry, account in result:
            start = _bucket_start(entry.started_at, query.period)
            ident = (start, account, entry.key_id or "", entry.model, entry.currency)
            bucket = buckets.get(ident)
            if bucket is None:
                bucket = buckets[ident] = UsageBucket(
                    start, account, entry.key_id, entry.model, entry.currency
                )
            bucket.add(entry)
    return [buckets[ident] for ident in sorted(buckets)]


def _bucket_start(moment: datetime, period: Period) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment if period == "hour" else moment.replace(hour=0)


@dataclass(frozen=True, slots=True)
class CreditRow:
    """Money added to an account: a top-up, or a grant (``granted``)."""

    account: str
    currency: str
    amount: Decimal
    granted: bool
    created_at: datetime


async def credit_history(
    database: Database, account: str | None = None, *, limit: int = 100
) -> list[CreditRow]:
    """The latest ``limit`` credits, newest first; only ``account``'s if given."""
    statement = (
        select(Credit, Account.name)
        .join(Account, Credit.account_id == Account.id)
        .order_by(Credit.created_at.desc(), Credit.id.desc())
        .limit(limit)
    )
    if account is not None:
        statement = statement.where(Account.name == account.strip())
    async with database.session() as session:
        rows = (await session.execute(statement)).all()
    return [
        CreditRow(
            name,
            credit.currency,
            from_nanos(credit.amount_nanos),
            credit.granted,
            credit.created_at,
        )
        for credit, name in rows
    ]


async def settled_request(database: Database, request_id: str, account: str) -> UsageBucket | None:
    """The settled request ``request_id`` of ``account`` as a bucket of one, or None if
    it is not (yet) settled or belongs to another account."""
    statement = (
        select(LedgerEntry, Account.name)
        .join(Account, LedgerEntry.account_id == Account.id)
        .where(LedgerEntry.request_id == request_id, Account.name == account.strip())
    )
    async with database.session() as session:
        row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    entry, name = row
    bucket = UsageBucket(entry.started_at, name, entry.key_id, entry.model, entry.currency)
    bucket.add(entry)
    return bucket
