"""Usage reports: the ledger summed per UTC day and model."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from tests.unit.charges import FLASH
from tests.unit.charges import charge as shared_charge

from deepwell.accounts.keys import KeyStore
from deepwell.billing.ledger import Charge, Ledger
from deepwell.billing.usage import usage_report
from deepwell.store.db import Database

QUOTE = FLASH


def charge(n: int, account_id: int, at: datetime) -> Charge:
    return shared_charge(
        f"r{n}",
        account_id,
        hit_tokens=64,
        miss_tokens=36,
        output_tokens=10,
        reasoning_tokens=4,
        started_at=at,
        finished_at=at,
    )


async def test_rows_per_day_and_model(database: Database) -> None:
    keys = KeyStore(database)
    alice = await keys.authenticate((await keys.create("alice")).key)
    bob = await keys.authenticate((await keys.create("bob")).key)
    assert alice is not None
    assert bob is not None
    ledger = Ledger(database, charging=False, gateway_id="t")
    day1 = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    day2 = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    await ledger.settle(charge(1, alice.account_id, day1))
    await ledger.settle(charge(2, alice.account_id, day2))
    await ledger.settle(charge(3, alice.account_id, day2))
    await ledger.settle(replace(charge(4, alice.account_id, day2), model="deepseek-v4-pro"))
    await ledger.settle(charge(5, bob.account_id, day2))

    rows = await usage_report(database, account="alice")
    assert [(r.day, r.model, r.requests) for r in rows] == [
        (date(2026, 11, 30), "deepseek-v4-flash", 1),
        (date(2026, 12, 1), "deepseek-v4-flash", 2),
        (date(2026, 12, 1), "deepseek-v4-pro", 1),
    ]
    flash = rows[1]
    assert (flash.hit_tokens, flash.miss_tokens, flash.output_tokens) == (128, 72, 20)
    assert flash.reasoning_tokens == 8
    assert flash.cache_hit_ratio == 0.64
    assert flash.cost == 2 * QUOTE.cost(hit=64, miss=36, output=10)

    everyone = await usage_report(database, since=date(2026, 12, 1))
    assert sum(r.requests for r in everyone) == 4
    assert await usage_report(database, until=date(2026, 11, 29)) == []
    assert len(await usage_report(database, until=date(2026, 11, 30))) == 1
