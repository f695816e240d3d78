"""The fakes the HTTP tests build their app with."""

from __future__ import annotations

from decimal import Decimal

from deepwell.billing.balances import BalanceInfo
from deepwell.billing.ledger import Charge
from deepwell.vocabulary import Caller

KEY = "sk-0123456789abcdef0123456789abcdef"
CALLER = Caller(account_id=1, account="alice", key_id="key_0123456789abcdef")
REPLY = "Hello from the fake engine."


class FakeKeys:
    """Knows one key; records every key it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def authenticate(self, key: str) -> Caller | None:
        self.asked.append(key)
        return CALLER if key == KEY else None


class FakeWallet:
    """Holds and settles in memory: every hold succeeds unless ``refuse`` is set."""

    def __init__(self) -> None:
        self.refuse = False
        self.holds: dict[str, Decimal] = {}
        self.charges: list[Charge] = []
        self.balances: list[BalanceInfo] = []

    async def hold(self, request_id: str, account_id: int, currency: str, amount: Decimal) -> bool:
        if self.refuse:
            return False
        self.holds[request_id] = amount
        return True

    async def settle(self, charge: Charge) -> bool:
        if any(c.request_id == charge.request_id for c in self.charges):
            return False
        self.holds.pop(charge.request_id, None)
        self.charges.append(charge)
        return True

    async def of(self, account_id: int) -> list[BalanceInfo]:
        return self.balances
