"""``GET /user/balance``: the caller's account balance, in DeepSeek's shape."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from fastapi import APIRouter, Request

from deepwell.billing.balances import BalanceInfo
from deepwell.http.auth import AuthenticatedCaller
from deepwell.http.state import services

router = APIRouter()

CENT = Decimal("0.01")


@router.get("/user/balance")
async def balance(request: Request, caller: AuthenticatedCaller) -> dict[str, Any]:
    state = services(request)
    infos = await state.balances.of(caller.account_id)
    if not infos:
        infos = [BalanceInfo(state.currency, Decimal(0), Decimal(0))]
    available = not state.charging or any(info.total > info.held for info in infos)
    return {"is_available": available, "balance_infos": [_wire(info) for info in infos]}


def _wire(info: BalanceInfo) -> dict[str, str]:
    return {
        "currency": info.currency,
        "total_balance": _cents(info.total),
        "granted_balance": _cents(info.granted),
        "topped_up_balance": _cents(info.topped_up),
    }


def _cents(amount: Decimal) -> str:
    """Two decimals, rounded down: the balance shown is never more than there is."""
    return str(amount.quantize(CENT, rounding=ROUND_DOWN))
