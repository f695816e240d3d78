"""Money end to end, on SQLite and on PostgreSQL: balances, exact charges, 402, holds.

Every charge is recomputed here from the usage the client received and the default
price table, to the billionth the ledger keeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import httpx
import openai
import pytest
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import wipe_postgres
from tests.e2e.conftest import (
    PLAIN,
    Server,
    create_key,
    deepwell_json,
    running_server,
    server_env,
)

pytestmark = pytest.mark.e2e

# USD per million tokens: cache hit, cache miss, output (the defaults).
PRICES = {
    "deepseek-v4-flash": (Decimal("0.0028"), Decimal("0.14"), Decimal("0.28")),
    "deepseek-v4-pro": (Decimal("0.003625"), Decimal("0.435"), Decimal("0.87")),
}
NANO = Decimal("1e-9")
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server per database: the shared one on SQLite, one more on PostgreSQL."""
    if request.param == "sqlite":
        yield request.getfixturevalue("server")
        return
    url: str = request.getfixturevalue("postgres_url")
    wipe_postgres(url)
    data_dir = tmp_path_factory.mktemp("deepwell-postgres")
    env = server_env(data_dir, DEEPWELL_DATABASE_URL=url)
    with running_server(data_dir, env) as running:
        yield running


_accounts = iter(range(1_000_000))


def account(server: Server, funds: str | None = "1") -> tuple[str, str]:
    """A new account with one key and ``funds`` USD topped up: (name, key)."""
    name = f"billing-{next(_accounts)}"
    return name, create_key(server.env, name, funds=funds)


def client(server: Server, key: str, path: str = "") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.base_url + path, max_retries=0)


def balance(server: Server, name: str) -> dict[str, Decimal]:
    (usd,) = deepwell_json(server.env, "accounts", "balance", name)["balances"]
    return {field: Decimal(value) for field, value in usd.items() if field != "currency"}


def ledger_total(server: Server, name: str) -> Decimal:
    report = deepwell_json(server.env, "usage", "--account", name)
    return Decimal(report["total_cost"].get("USD", "0"))


def cache_hit_tokens(usage: CompletionUsage) -> int:
    """DeepSeek's ``prompt_cache_hit_tokens``, an extra field to the ``openai`` SDK."""
    hit: int = (usage.model_extra or {})["prompt_cache_hit_tokens"]
    return hit


def expected_cost(model: str, usage: CompletionUsage) -> Decimal:
    hit, miss, output = PRICES[model]
    hits = cache_hit_tokens(usage)
    misses: int = (usage.model_extra or {})["prompt_cache_miss_tokens"]
    total = hits * hit + misses * miss + usage.completion_tokens * output
    return (total / 1_000_000).quantize(NANO, rounding=ROUND_HALF_EVEN)


def settled(server: Server, name: str, timeout: float = 20) -> dict[str, Decimal]:
    """The balance once no hold is open (a cut stream settles just after the cut)."""
    deadline = time.monotonic() + timeout
    while (now := balance(server, name))["held"] and time.monotonic() < deadline:
        time.sleep(0.2)
    return now


def test_balance_in_deepseeks_shape(platform: Server) -> None:
    _, key = account(platform, funds="12.345")
    response = httpx.get(
        f"{platform.base_url}/user/balance", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "is_available": True,
        "balance_infos": [
            {
                "currency": "USD",
                "total_balance": "12.34",
                "granted_balance": "0.00",
                "topped_up_balance": "12.34",
            }
        ],
    }


@pytest.mark.parametrize("model", ["deepseek-v4-flash", "deepseek-v4-pro"])
def test_the_charge_is_what_the_usage_and_prices_say(platform: Server, model: str) -> None:
    name, key = account(platform)
    # Long enough to be served from the cache the second time, at the hit price.
    prompt: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Name a colour. " + "Context: blue sky. " * 40}
    ]
    usages = []
    with client(platform, key) as api:
        for _ in range(2):
            reply = api.chat.completions.create(
                model=model, messages=prompt, max_tokens=8, temperature=0, extra_body=PLAIN
            )
            assert reply.usage is not None
            usages.append(reply.usage)
    costs = [expected_cost(model, usage) for usage in usages]
    assert cache_hit_tokens(usages[-1]) > 0
    after = balance(platform, name)
    assert after["held"] == 0
    assert Decimal(1) - after["total_balance"] == sum(costs)
    assert ledger_total(platform, name) == sum(costs)


def test_a_funded_account_is_charged_exactly_from_its_reserve(platform: Server) -> None:
    """With money to spare, requests hold against a slice the gateway reserved and are
    settled in batches; once the idle slice goes back, the balance is exact."""
    name, key = account(platform, funds="100")
    with client(platform, key) as api:
        replies = [
            api.chat.completions.create(
                model="deepseek-v4-flash",
                messages=[{"role": "user", "content": f"Say {n}."}],
                max_tokens=4,
                extra_body=PLAIN,
            )
            for n in range(3)
        ]
    costs = [expected_cost("deepseek-v4-flash", r.usage) for r in replies if r.usage]
    assert len(costs) == 3
    after = settled(platform, name)
    assert after["held"] == 0
    assert Decimal(100) - after["total_balance"] == sum(costs)
    assert ledger_total(platform, name) == sum(costs)
    report = deepwell_json(platform.env, "usage", "--account", name)["usage"]
    assert sum(row["requests"] for row in report) == 3


def test_granted_money_is_spent_first(platform: Server) -> None:
    name, key = account(platform)
    deepwell_json(platform.env, "accounts", "topup", name, "0.000001", "--granted")
    with client(platform, key) as api:
        reply = api.chat.completions.create(
            model="deepseek-v4-flash", messages=HELLO, max_tokens=8, extra_body=PLAIN
        )
    assert reply.usage is not None
    cost = expected_cost("deepseek-v4-flash", reply.usage)
    assert cost > Decimal("0.000001")
    after = balance(platform, name)
    assert after["granted_balance"] == 0
    assert after["topped_up_balance"] == Decimal(1) - (cost - Decimal("0.000001"))


def test_no_money_is_a_402_on_every_generating_route(platform: Server) -> None:
    _, key = account(platform, funds=None)
    envelope = {
        "message": "Insufficient Balance",
        "type": "unknown_error",
        "param": None,
        "code": "invalid_request_error",
    }
    calls: list[Callable[[], object]] = [
        lambda: client(platform, key).chat.completions.create(
            model="deepseek-v4-flash", messages=HELLO, max_tokens=4
        ),
        lambda: client(platform, key, "/beta").chat.completions.create(
            model="deepseek-v4-flash",
            messages=[*HELLO, {"role": "assistant", "content": "Hel", "prefix": True}],  # type: ignore[list-item]
            max_tokens=4,
            extra_body=PLAIN,
        ),
        lambda: client(platform, key, "/beta").completions.create(
            model="deepseek-v4-flash", prompt="def f():", max_tokens=4
        ),
        lambda: client(platform, key).chat.completions.create(
            model="deepseek-v4-flash", messages=HELLO, max_tokens=4, stream=True
        ),
    ]
    for call in calls:
        with pytest.raises(openai.APIStatusError) as raised:
            call()
        assert raised.value.status_code == 402
        assert raised.value.response.json() == {"error": envelope}


def test_a_stream_cut_by_the_client_is_charged_for_what_it_produced(platform: Server) -> None:
    name, key = account(platform)
    with client(platform, key) as api:
        stream = api.chat.completions.create(
            model="deepseek-v4-flash",
            messages=[{"role": "user", "content": "Count from 1 to 200, one per line."}],
            max_tokens=300,
            temperature=0,  # sampled, the answer may end within its first tokens
            stream=True,
            extra_body=PLAIN,
        )
        for chunks, _ in enumerate(stream, start=1):
            if chunks == 6:
                break
        stream.close()
    after = settled(platform, name)
    assert after["held"] == 0
    report = deepwell_json(platform.env, "usage", "--account", name)["usage"]
    (row,) = report
    assert 4 <= row["output_tokens"] < 300
    assert Decimal(1) - after["total_balance"] == Decimal(row["cost"])
    assert platform.busy_after_settling() == 0


def test_concurrent_requests_never_overspend(platform: Server) -> None:
    """32 requests at once on a balance that covers a handful of worst cases."""
    name, key = account(platform, funds="0.00005")

    async def burst() -> list[int]:
        api = openai.AsyncOpenAI(api_key=key, base_url=platform.base_url, max_retries=0)

        async def one(n: int) -> int:
            try:
                await api.chat.completions.create(
                    model="deepseek-v4-flash",
                    messages=[{"role": "user", "content": f"Say {n}."}],
                    max_tokens=4,
                    extra_body=PLAIN,
                )
            except openai.APIStatusError as error:
                return error.status_code
            return 200

        async with api:
            return await asyncio.gather(*(one(n) for n in range(32)))

    statuses = asyncio.run(burst())
    # 402 when the balance cannot cover a hold; 429 when what it leaves lowers the
    # account's concurrency below the request's place (limits.concurrency.low_balance).
    assert set(statuses) <= {200, 402, 429}
    assert statuses.count(200) >= 1
    assert statuses.count(402) + statuses.count(429) >= 1
    after = balance(platform, name)
    assert after["held"] == 0
    assert after["total_balance"] >= 0
    assert Decimal("0.00005") - after["total_balance"] == ledger_total(platform, name)
    report = deepwell_json(platform.env, "usage", "--account", name)["usage"]
    assert sum(row["requests"] for row in report) == statuses.count(200)


def test_a_killed_server_leaves_no_hold_after_a_restart(platform: Server, tmp_path: Path) -> None:
    name, key = account(platform, funds="1")
    env = {
        **platform.env,
        "DEEPWELL_DATA_DIR": str(tmp_path),
        "DEEPWELL_BILLING__GATEWAY_ID": "crash",
    }
    if "DEEPWELL_DATABASE_URL" not in env:
        # On SQLite the second server shares the first one's database file.
        env["DEEPWELL_DATABASE_URL"] = f"sqlite+aiosqlite:///{platform.data_dir / 'deepwell.db'}"
    with running_server(tmp_path, env, key=key) as doomed:

        async def streams() -> None:
            api = openai.AsyncOpenAI(api_key=key, base_url=doomed.base_url, max_retries=0)
            streaming = asyncio.Event()

            async def one(n: int) -> None:
                stream = await api.chat.completions.create(
                    model="deepseek-v4-flash",
                    messages=[{"role": "user", "content": f"Count to {100 + n}."}],
                    max_tokens=200,
                    stream=True,
                    extra_body=PLAIN,
                )
                async for _ in stream:
                    streaming.set()

            async with api:
                tasks = [asyncio.create_task(one(n)) for n in range(6)]
                # Killed mid-burst: once the first tokens flow, while all six run.
                await asyncio.wait_for(streaming.wait(), timeout=60)
                await asyncio.sleep(0.5)
                doomed.process.kill()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(streams())
        doomed.process.wait()
    assert balance(platform, name)["held"] > 0
    with running_server(tmp_path, env, key=key):
        after = balance(platform, name)
    assert after["held"] == 0
    assert after["total_balance"] >= 0
    assert Decimal(1) - after["total_balance"] == ledger_total(platform, name)
