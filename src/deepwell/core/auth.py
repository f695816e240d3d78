"""Who is calling: the result of authenticating an API key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. Limits, balances and caches belong to the account."""

    account_id: int
    account: str
    key_id: str
