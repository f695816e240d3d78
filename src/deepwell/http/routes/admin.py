"""``/admin``: accounts, balances, top-ups, keys and usage, for the admin token only.

Every route needs ``Authorization: Bearer <admin_token>``; anything else, an account's
API key included, is a 401 (and every request is, while no token is configured). The
routes use the same stores as the CLI, through ``Services.accounts``. A key is shown
once, in the answer that creates it. The JSON shapes are shared with the console's own
account-scoped API (``routes/console.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from deepwell.accounts.keys import CreatedKey, KeyInfo
from deepwell.billing.balances import AccountBalances, BalanceInfo, UnknownAccount
from deepwell.billing.usage import CreditRow, Period, UsageBucket, UsageQuery
from deepwell.console import AccountAdmin, UnknownKey
from deepwell.errors import AuthenticationFailed, InvalidRequest
from deepwell.http import body, openapi
from deepwell.http.admin import REFUSED, is_admin
from deepwell.http.state import services

ADMIN_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The server's admin_token (DEEPWELL_ADMIN_TOKEN) as a Bearer token.",
)
# The longest span one usage query may cover, by period.
MAX_SPAN = {"hour": timedelta(days=31), "day": timedelta(days=400)}
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}


async def require_admin(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(ADMIN_BEARER)],
) -> None:
    """Let the request through only with the admin token (compared in constant time)."""
    if not is_admin(request, services(request).admin_token):
        raise AuthenticationFailed(REFUSED)


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class NewKey(BaseModel):
    account: str = Field(description="The owning account; created if it does not exist.")
    name: str | None = Field(default=None, description="A label for the key.")


class TopUp(BaseModel):
    amount: Decimal = Field(gt=0, description="Positive, at most nine decimals.")
    currency: str | None = Field(default=None, description="Default: the billing currency.")
    granted: bool = Field(default=False, description="A grant, spent before topped-up money.")


def accounts_of(request: Request) -> AccountAdmin:
    found = services(request).accounts
    if found is None:
        raise HTTPException(404, "Not Found")
    return found


Accounts = Annotated[AccountAdmin, Depends(accounts_of)]


@router.get("/accounts", summary="Every account with its balances")
async def list_accounts(accounts: Accounts) -> dict[str, Any]:
    return {"accounts": [account_json(found) for found in await accounts.accounts()]}


@router.get("/accounts/{name}", summary="An account's balances and its latest top-ups")
async def get_account(name: str, accounts: Accounts) -> dict[str, Any]:
    found = await _named(accounts, name)
    history = await accounts.top_ups(found.account)
    return account_json(found) | {"top_ups": [credit_json(row) for row in history]}


@router.post(
    "/accounts/{name}/top-ups",
    summary="Add money to an account",
    status_code=201,
    openapi_extra=openapi.json_body(TopUp),
)
async def top_up(name: str, request: Request, accounts: Accounts) -> dict[str, Any]:
    wanted = await body.parse(request, TopUp)
    currency = (wanted.currency or services(request).currency).upper()
    try:
        balance = await accounts.top_up(name, wanted.amount, currency, granted=wanted.granted)
    except UnknownAccount as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="amount") from exc
    return {"account": name, "balance": balance_json(balance)}


@router.get("/top-ups", summary="The latest top-ups and grants of every account")
async def list_top_ups(accounts: Accounts, account: str | None = None) -> dict[str, Any]:
    return {"top_ups": [credit_json(row) for row in await accounts.top_ups(account)]}


@router.get("/keys", summary="API keys (never the keys themselves)")
async def list_keys(accounts: Accounts, account: str | None = None) -> dict[str, Any]:
    return {"keys": [key_json(info) for info in await accounts.keys(account)]}


@router.post(
    "/keys",
    summary="Create a key (shown once, in this answer)",
    status_code=201,
    openapi_extra=openapi.json_body(NewKey),
)
async def create_key(request: Request, accounts: Accounts) -> dict[str, Any]:
    wanted = await body.parse(request, NewKey)
    return await created(accounts, wanted.account, wanted.name)


@router.delete("/keys/{key_id}", summary="Revoke a key; a running request's key is refused next")
async def revoke_key(key_id: str, accounts: Accounts) -> dict[str, Any]:
    return await revoked(accounts, key_id, account=None)


@router.get("/usage", summary="Tokens, cache hits and cost by hour or day, account, key, model")
async def usage(
    accounts: Accounts,
    period: Period = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    account: str | None = None,
    key_id: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    query = usage_query(period, since, until, account=account, key_id=key_id, model=model)
    return usage_json(query, await accounts.usage(query))


# -- shared with the console's own API --


async def _named(accounts: AccountAdmin, name: str) -> AccountBalances:
    try:
        return await accounts.balances(name)
    except UnknownAccount as exc:
        raise HTTPException(404, str(exc)) from exc


async def created(accounts: AccountAdmin, account: str, name: str | None) -> dict[str, Any]:
    try:
        key = await accounts.create_key(account, name)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    return created_json(key)


async def revoked(accounts: AccountAdmin, key_id: str, *, account: str | None) -> dict[str, Any]:
    try:
        await accounts.revoke_key(key_id, account=account)
    except UnknownKey as exc:
        raise HTTPException(404, f"no API key with id {key_id!r}") from exc
    return {"key_id": key_id, "revoked": True}


def usage_query(
    period: Period,
    since: datetime | None,
    until: datetime | None,
    *,
    account: str | None,
    key_id: str | None,
    model: str | None,
) -> UsageQuery:
    """The query for ``since`` to ``until`` (naive times are UTC; by default the last day
    for hours, the last 30 days for days); a 400 for an empty or too long span."""
    try:
        end = _utc(until) if until is not None else datetime.now(UTC)
        start = _utc(since) if since is not None else end - DEFAULT_SPAN[period]
    except (OverflowError, ValueError) as exc:
        raise InvalidRequest(f"a time out of range: {exc}", param="since") from exc
    if start >= end:
        raise InvalidRequest("`since` must be before `until`", param="since")
    if end - start > MAX_SPAN[period]:
        days = MAX_SPAN[period].days
        raise InvalidRequest(f"a usage query by {period} spans at most {days} days", param="since")
    return UsageQuery(start, end, period, account=account, key_id=key_id, model=model)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal) -> str:
    return f"{amount:f}"


def balance_json(info: BalanceInfo) -> dict[str, Any]:
    return {
        "currency": info.currency,
        "total": _money(info.total),
        "granted": _money(info.granted),
        "topped_up": _money(info.topped_up),
        "held": _money(info.held),
    }


def account_json(found: AccountBalances) -> dict[str, Any]:
    return {"account": found.account, "balances": [balance_json(b) for b in found.balances]}


def credit_json(row: CreditRow) -> dict[str, Any]:
    return {
        "account": row.account,
        "currency": row.currency,
        "amount": _money(row.amount),
        "granted": row.granted,
        "created_at": _time(row.created_at),
    }


def key_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "account": info.account,
        "name": info.name,
        "last4": info.last4,
        "created_at": _time(info.created_at),
        "revoked_at": _time(info.revoked_at),
    }


def created_json(key: CreatedKey) -> dict[str, Any]:
    return {
        "key": key.key,
        "key_id": key.key_id,
        "account": key.account,
        "name": key.name,
        "created_at": _time(key.created_at),
    }


_SUMS = ("requests", "hit_tokens", "miss_tokens", "output_tokens", "reasoning_tokens")


def usage_json(query: UsageQuery, buckets: list[UsageBucket]) -> dict[str, Any]:
    """The buckets, and their totals per currency."""
    totals: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        total = totals.setdefault(bucket.currency, dict.fromkeys(_SUMS, 0) | {"cost": Decimal(0)})
        for name in _SUMS:
            total[name] += getattr(bucket, name)
        total["cost"] += bucket.cost
    return {
        "period": query.period,
        "since": _time(query.since),
        "until": _time(query.until),
        "rows": [bucket_json(bucket) for bucket in buckets],
        "totals": [
            {"currency": currency} | total | {"cost": _money(total["cost"])}
            for currency, total in sorted(totals.items())
        ],
    }


def bucket_json(bucket: UsageBucket) -> dict[str, Any]:
    return {
        "start": _time(bucket.start),
        "account": bucket.account,
        "key_id": bucket.key_id,
        "model": bucket.model,
        "currency": bucket.currency,
        **{name: getattr(bucket, name) for name in _SUMS},
        "cost": _money(bucket.cost),
    }
