"""The fakes the HTTP tests build their app with."""

from __future__ import annotations

from tests.unit.charges import FakeWallet

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


__all__ = ["CALLER", "KEY", "REPLY", "FakeKeys", "FakeWallet"]
