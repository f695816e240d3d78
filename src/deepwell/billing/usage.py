"""Usage reports from the ledger: tokens, cost and cache-hit ratio per day and model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Select, select

from deepwell.billing.prices import from_nanos
from deepwell.store.db import Database
from deepwell.store.tables import Account, LedgerEntry


@dataclass(slots=True)
class UsageRow:
    """One UTC day of one model (and currency): the sums of its settled requests."""

    day: date
    model: str
    currency: str
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
            row = rows.get(key) or rows.setdefault(key, UsageRow(*key))
            row.requests += 1
            row.hit_tokens += entry.hit_tokens
            row.miss_tokens += entry.miss_tokens
            row.output_tokens += entry.output_tokens
            row.reasoning_tokens += entry.reasoning_tokens
            row.cost_nanos += entry.cost_nanos
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
