"""``/console``: the web console's pages and assets, and its account-scoped API.

The pages are static files of the package (``deepwell/console/static``), served with a
strict Content-Security-Policy: scripts, styles and requests from this origin only, no
inline script, no framing. They hold no secret: the page keeps the key or admin token the
user signs in with in ``sessionStorage`` and sends it as a Bearer header, so there is no
cookie a forged cross-site form could ride on. Every answer is decided here, on the
server: ``/console/api/...`` shows an API key its own account only, and the admin pages
read ``/admin``, which refuses anything but the admin token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from deepwell.billing.usage import Period
from deepwell.console import STATIC_DIR
from deepwell.http import body, openapi
from deepwell.http.admin import is_admin
from deepwell.http.auth import AuthenticatedCaller, authenticate
from deepwell.http.routes.admin import (
    Accounts,
    account_json,
    bucket_json,
    created,
    credit_json,
    key_json,
    revoked,
    usage_json,
    usage_query,
)
from deepwell.http.state import services

PAGES = ("keys", "balance", "usage", "playground", "accounts")
"""The console's pages besides the sign-in page, each ``static/<page>.html``."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/console/api", tags=["console"])


def static_file(name: str) -> Response:
    """A file of the console's assets, by its bare name (no folders: nothing else is
    reachable), with the security headers; 404 for anything else."""
    path = STATIC_DIR / name
    kind = _TYPES.get(path.suffix)
    if "/" in name or "\\" in name or name.startswith(".") or kind is None or not path.is_file():
        raise HTTPException(404, "Not Found")
    return FileResponse(path, media_type=kind, headers=SECURITY_HEADERS)


@pages.get("/console")
async def sign_in_page() -> Response:
    return static_file("index.html")


@pages.get("/console/")
async def console_slash() -> Response:
    return RedirectResponse("/console", status_code=308)


@pages.get("/console/static/{name}")
async def asset(name: str) -> Response:
    return static_file(name)


@pages.get("/console/{page}")
async def page(page: str) -> Response:
    if page not in PAGES:
        raise HTTPException(404, "Not Found")
    return static_file(f"{page}.html")


class NewOwnKey(BaseModel):
    name: str | None = Field(default=None, description="A label for the key.")


@api.get("/session", summary="Who the Bearer token is: the admin, or an account's key")
async def session(request: Request) -> dict[str, Any]:
    if is_admin(request, services(request).admin_token):
        return {"role": "admin", "account": None, "key_id": None}
    caller = await authenticate(request)
    return {"role": "account", "account": caller.account, "key_id": caller.key_id}


@api.get("/account", summary="The caller's balances and latest top-ups")
async def own_account(caller: AuthenticatedCaller, accounts: Accounts) -> dict[str, Any]:
    found = await accounts.balances(caller.account)
    history = await accounts.top_ups(caller.account)
    return account_json(found) | {"top_ups": [credit_json(row) for row in history]}


@api.get("/keys", summary="The caller's account's keys (never the keys themselves)")
async def own_keys(caller: AuthenticatedCaller, accounts: Accounts) -> dict[str, Any]:
    return {"keys": [key_json(info) for info in await accounts.keys(caller.account)]}


@api.post(
    "/keys",
    summary="Create a key of the caller's account (shown once, in this answer)",
    status_code=201,
    openapi_extra=openapi.json_body(NewOwnKey),
)
async def create_own_key(
    request: Request, caller: AuthenticatedCaller, accounts: Accounts
) -> dict[str, Any]:
    wanted = await body.parse(request, NewOwnKey)
    return await created(accounts, caller.account, wanted.name)


@api.delete("/keys/{key_id}", summary="Revoke a key of the caller's account")
async def revoke_own_key(
    key_id: str, caller: AuthenticatedCaller, accounts: Accounts
) -> dict[str, Any]:
    return await revoked(accounts, key_id, account=caller.account)


@api.get("/usage", summary="The caller's account's usage by hour or day, key and model")
async def own_usage(
    caller: AuthenticatedCaller,
    accounts: Accounts,
    period: Period = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    key_id: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    query = usage_query(period, since, until, account=caller.account, key_id=key_id, model=model)
    return usage_json(query, await accounts.usage(query))


@api.get(
    "/requests/{request_id}",
    summary="The tokens and cost of one of the caller's requests (its x-request-id), once settled",
)
async def own_request(
    request_id: str, caller: AuthenticatedCaller, accounts: Accounts
) -> dict[str, Any]:
    found = await accounts.settled(request_id, caller.account)
    if found is None:
        raise HTTPException(404, "no settled request with that id in this account")
    return {"request_id": request_id} | bucket_json(found)
