"""Charges and a wallet for tests of billing and of what stands on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from deepwell.billing.balances import BalanceInfo
from deepwell.billing.ledger import Charge, Held
from deepwell.billing.prices import PriceQuote

FLASH = PriceQuote(hit=Decimal("0.0028"), miss=Decimal("0.14"), output=Decimal("0.28"))
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def charge(request_id: str, account_id: int, **fields: object) -> Charge:
    """A settled flash request: one million cache-miss tokens (0.14 USD) unless told."""
    base = Charge(
        request_id=request_id,
        account_id=account_id,
        key_id=None,
        model="deepseek-v4-flash",
        backing="test-model",
        currency="USD",
        hit_tokens=0,
        miss_tokens=1_000_000,
        output_tokens=0,
        reasoning_tokens=0,
        quote=FLASH,
        finish_reason="stop",
        ttft_ms=5,
        duration_ms=10,
        started_at=NOON,
        finished_at=NOON,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


class FakeWallet:
    """Holds and settles in memory: every hold succeeds unless ``refuse`` is set."""

    def __init__(self) -> None:
        self.refuse = False
        # What a hold reports the account has left (None: nothing is charged).
        self.available: Decimal | None = None
        self.holds: dict[str, Decimal] = {}
        self.owners: dict[str, int] = {}  # request id → account id, while held
        self.charges: list[Charge] = []
        self.balances: list[BalanceInfo] = []

    async def hold(
        self, request_id: str, account_id: int, currency: str, amount: Decimal
    ) -> Held | None:
        if self.refuse:
            return None
        self.holds[request_id] = amount
        self.owners[request_id] = account_id
        if self.available is None:
            return Held(None)
        holders = sum(owner == account_id for owner in self.owners.values())
        return Held(self.available, holders=holders)

    async def release(self, request_id: str) -> None:
        self.holds.pop(request_id)
        self.owners.pop(request_id)

    async def settle(self, charge: Charge) -> bool:
        if any(c.request_id == charge.request_id for c in self.charges):
            return False
        self.holds.pop(charge.request_id, None)
        self.owners.pop(charge.request_id, None)
        self.charges.append(charge)
        return True

    async def of(self, account_id: int) -> list[BalanceInfo]:
        return self.balances
