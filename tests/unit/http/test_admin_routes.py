"""``/admin``: accounts, top-ups, keys and usage behind the admin token, on a real SQLite
store and the fake engine; and the console's account-scoped ``/console/api``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings

TOKEN = "admin-secret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CHAT = {
    "model": "deepseek-v4-flash",
    "messages": [{"role": "user", "content": "hi"}],
    "thinking": {"type": "disabled"},
    "max_tokens": 8,
}


@pytest.fixture
def real_app(tmp_path: Path, clean_env: None, engine: FakeEngine) -> FastAPI:
    settings = Settings(data_dir=tmp_path, admin_token=SecretStr(TOKEN))
    return create_app(settings, engines={DEFAULT_MODEL: engine})


@pytest.fixture
async def http(real_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=real_app)
    async with (
        real_app.router.lifespan_context(real_app),
        httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as client,
    ):
        yield client


async def new_key(http: httpx.AsyncClient, account: str, name: str | None = None) -> Any:
    response = await http.post(
        "/admin/keys", json={"account": account, "name": name}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    return response.json()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/accounts"),
        ("GET", "/admin/accounts/alice"),
        ("POST", "/admin/accounts/alice/top-ups"),
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("DELETE", "/admin/keys/key_0"),
        ("GET", "/admin/usage"),
        ("GET", "/admin/top-ups"),
    ],
)
async def test_every_admin_route_refuses_an_account_key_and_no_token(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    key = (await new_key(http, "alice"))["key"]
    for headers in ({}, bearer(key), bearer(TOKEN + "x")):
        response = await http.request(method, path, headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


async def test_no_configured_token_opens_nothing(
    tmp_path: Path, clean_env: None, engine: FakeEngine
) -> None:
    app = create_app(Settings(data_dir=tmp_path), engines={DEFAULT_MODEL: engine})
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        assert (await client.get("/admin/accounts", headers=bearer(""))).status_code == 401
        assert (await client.get("/admin/accounts", headers=bearer("None"))).status_code == 401


async def test_a_key_is_shown_once_then_listed_without_it(http: httpx.AsyncClient) -> None:
    created = await new_key(http, "alice", "laptop")
    assert created["key"].startswith("sk-")
    assert (created["account"], created["name"]) == ("alice", "laptop")

    listed = (await http.get("/admin/keys", headers=ADMIN)).json()["keys"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert listed[0]["last4"] == created["key"][-4:]
    assert created["key"] not in str(listed)
    assert listed[0]["revoked_at"] is None


async def test_a_revoked_key_is_refused_at_once(http: httpx.AsyncClient) -> None:
    created = await new_key(http, "alice")
    assert (await http.get("/user/balance", headers=bearer(created["key"]))).status_code == 200

    response = await http.delete(f"/admin/keys/{created['key_id']}", headers=ADMIN)
    assert response.json() == {"key_id": created["key_id"], "revoked": True}
    assert (await http.get("/user/balance", headers=bearer(created["key"]))).status_code == 401
    assert (await http.delete("/admin/keys/key_nope", headers=ADMIN)).status_code == 404


async def test_top_ups_add_to_the_balance_and_the_history(http: httpx.AsyncClient) -> None:
    await new_key(http, "alice")
    paid = await http.post("/admin/accounts/alice/top-ups", json={"amount": "12.5"}, headers=ADMIN)
    assert paid.status_code == 201
    assert paid.json()["balance"]["topped_up"] == "12.500000000"
    granted = {"amount": 2, "granted": True}
    await http.post("/admin/accounts/alice/top-ups", json=granted, headers=ADMIN)

    account = (await http.get("/admin/accounts/alice", headers=ADMIN)).json()
    assert account["balances"][0]["total"] == "14.500000000"
    assert [(t["amount"], t["granted"]) for t in account["top_ups"]] == [
        ("2.000000000", True),
        ("12.500000000", False),
    ]
    everyone = (await http.get("/admin/accounts", headers=ADMIN)).json()["accounts"]
    assert [a["account"] for a in everyone] == ["alice"]


@pytest.mark.parametrize(
    ("account", "body", "status"),
    [
        ("nobody", {"amount": "1"}, 404),
        ("alice", {"amount": "-1"}, 400),
        ("alice", {"amount": "0.0000000001"}, 400),
        ("alice", {}, 422),
    ],
)
async def test_bad_top_ups(
    http: httpx.AsyncClient, account: str, body: dict[str, Any], status: int
) -> None:
    await new_key(http, "alice")
    response = await http.post(f"/admin/accounts/{account}/top-ups", json=body, headers=ADMIN)
    assert response.status_code == status


async def test_usage_by_key_and_hour(http: httpx.AsyncClient) -> None:
    first = await new_key(http, "alice", "one")
    second = await new_key(http, "alice", "two")
    await http.post("/admin/accounts/alice/top-ups", json={"amount": "5"}, headers=ADMIN)
    for key in (first["key"], first["key"], second["key"]):
        response = await http.post("/chat/completions", json=CHAT, headers=bearer(key))
        assert response.status_code == 200, response.text

    usage = (await http.get("/admin/usage?period=hour", headers=ADMIN)).json()
    assert usage["period"] == "hour"
    by_key = {row["key_id"]: row["requests"] for row in usage["rows"]}
    assert by_key == {first["key_id"]: 2, second["key_id"]: 1}
    assert {row["model"] for row in usage["rows"]} == {"deepseek-v4-flash"}
    assert all(row["start"].endswith(":00:00Z") for row in usage["rows"])
    [total] = usage["totals"]
    assert total["requests"] == 3
    assert total["output_tokens"] == sum(row["output_tokens"] for row in usage["rows"])

    only = await http.get(f"/admin/usage?key_id={second['key_id']}", headers=ADMIN)
    assert only.json()["totals"][0]["requests"] == 1
    other = (await http.get("/admin/usage?account=bob", headers=ADMIN)).json()
    assert (other["rows"], other["totals"]) == ([], [])


@pytest.mark.parametrize(
    "query",
    [
        "since=2026-01-02T00:00:00&until=2026-01-01T00:00:00",
        "period=hour&since=2020-01-01T00:00:00&until=2021-01-01T00:00:00",
        "period=week",
    ],
)
async def test_bad_usage_queries(http: httpx.AsyncClient, query: str) -> None:
    assert (await http.get(f"/admin/usage?{query}", headers=ADMIN)).status_code in {400, 422}


async def test_admin_routes_are_declared_with_their_security(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"
    operation = spec["paths"]["/admin/keys"]["post"]
    assert operation["security"] == [{"AdminToken": []}]
    assert "NewKey" in spec["components"]["schemas"]
    assert "/console/api/keys" in spec["paths"]


# -- the console's own API: an account key sees its own account only --


async def test_the_session_says_who_signed_in(http: httpx.AsyncClient) -> None:
    created = await new_key(http, "alice")
    mine = (await http.get("/console/api/session", headers=bearer(created["key"]))).json()
    assert mine == {"role": "account", "account": "alice", "key_id": created["key_id"]}
    admin = (await http.get("/console/api/session", headers=ADMIN)).json()
    assert admin["role"] == "admin"
    assert (await http.get("/console/api/session", headers=bearer("sk-x"))).status_code == 401


async def test_an_account_manages_its_own_keys_only(http: httpx.AsyncClient) -> None:
    alice = await new_key(http, "alice")
    bob = await new_key(http, "bob")
    as_alice = bearer(alice["key"])

    made = await http.post("/console/api/keys", json={"name": "ci"}, headers=as_alice)
    assert made.status_code == 201
    assert made.json()["account"] == "alice"
    listed = (await http.get("/console/api/keys", headers=as_alice)).json()["keys"]
    assert {k["account"] for k in listed} == {"alice"}
    assert len(listed) == 2

    theirs = await http.delete(f"/console/api/keys/{bob['key_id']}", headers=as_alice)
    assert theirs.status_code == 404
    assert (await http.get("/user/balance", headers=bearer(bob["key"]))).status_code == 200
    mine = await http.delete(f"/console/api/keys/{made.json()['key_id']}", headers=as_alice)
    assert mine.json()["revoked"] is True


async def test_an_account_sees_its_own_balance_and_usage(http: httpx.AsyncClient) -> None:
    alice = await new_key(http, "alice")
    bob = await new_key(http, "bob")
    for name in ("alice", "bob"):
        await http.post(f"/admin/accounts/{name}/top-ups", json={"amount": "3"}, headers=ADMIN)
    await http.post("/chat/completions", json=CHAT, headers=bearer(bob["key"]))
    await http.post("/chat/completions", json=CHAT, headers=bearer(alice["key"]))

    account = (await http.get("/console/api/account", headers=bearer(alice["key"]))).json()
    assert account["account"] == "alice"
    assert [t["account"] for t in account["top_ups"]] == ["alice"]
    usage = (await http.get("/console/api/usage", headers=bearer(alice["key"]))).json()
    assert {row["account"] for row in usage["rows"]} == {"alice"}
    assert usage["totals"][0]["requests"] == 1
    refused = await http.get("/console/api/usage", headers=ADMIN)
    assert refused.status_code == 401


@pytest.mark.parametrize(
    "query", ["since=0001-01-01T00:00:00", "until=0001-01-01T00:00:00%2B01:00"]
)
async def test_times_at_the_edge_of_the_calendar_are_a_400(
    http: httpx.AsyncClient, query: str
) -> None:
    assert (await http.get(f"/admin/usage?{query}", headers=ADMIN)).status_code == 400
