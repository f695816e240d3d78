"""``GET /user/balance`` and the 402 of every generating route."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from http_fakes import FakeWallet

from deepwell.billing.balances import BalanceInfo

CHAT = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}
INSUFFICIENT = {
    "error": {
        "message": "Insufficient Balance",
        "type": "unknown_error",
        "param": None,
        "code": "invalid_request_error",
    }
}


@pytest.mark.parametrize("prefix", ["", "/v1"])
async def test_balance_in_deepseeks_shape(
    client: httpx.AsyncClient, wallet: FakeWallet, prefix: str
) -> None:
    wallet.balances = [
        BalanceInfo("CNY", Decimal("0"), Decimal("7.129")),
        BalanceInfo("USD", Decimal("10"), Decimal("100.005"), held=Decimal("3")),
    ]
    response = await client.get(f"{prefix}/user/balance")
    assert response.status_code == 200
    assert response.json() == {
        "is_available": True,
        "balance_infos": [
            {
                "currency": "CNY",
                "total_balance": "7.12",
                "granted_balance": "0.00",
                "topped_up_balance": "7.12",
            },
            {
                "currency": "USD",
                "total_balance": "110.00",
                "granted_balance": "10.00",
                "topped_up_balance": "100.00",
            },
        ],
    }


async def test_an_account_without_money_is_not_available(client: httpx.AsyncClient) -> None:
    response = await client.get("/user/balance")
    assert response.json() == {
        "is_available": False,
        "balance_infos": [
            {
                "currency": "USD",
                "total_balance": "0.00",
                "granted_balance": "0.00",
                "topped_up_balance": "0.00",
            }
        ],
    }


async def test_the_balance_needs_a_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/user/balance")).status_code == 401


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/completions", CHAT),
        ("/chat/completions", {**CHAT, "stream": True}),
        ("/beta/chat/completions", CHAT),
    ],
)
async def test_no_money_is_a_402_on_chat(
    client: httpx.AsyncClient, wallet: FakeWallet, path: str, body: dict[str, object]
) -> None:
    wallet.refuse = True
    response = await client.post(path, json=body)
    assert response.status_code == 402
    assert response.json() == INSUFFICIENT
    assert wallet.charges == []


async def test_a_request_is_settled_once_with_its_usage(
    client: httpx.AsyncClient, wallet: FakeWallet
) -> None:
    response = await client.post(
        "/chat/completions", json={**CHAT, "thinking": {"type": "disabled"}}
    )
    body = response.json()
    (charge,) = wallet.charges
    assert charge.request_id == body["id"]
    assert charge.output_tokens == body["usage"]["completion_tokens"]
    assert charge.miss_tokens == body["usage"]["prompt_cache_miss_tokens"]
    assert wallet.holds == {}


async def test_a_stream_is_settled_once(client: httpx.AsyncClient, wallet: FakeWallet) -> None:
    async with client.stream(
        "POST", "/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    (charge,) = wallet.charges
    assert charge.finish_reason == "stop"
