"""Several gateways on one PostgreSQL and one Redis, end to end.

Two ``deepwell serve`` processes (gateway ids ``a`` and ``b``), each with its own embedded
engine, share the accounts, the ledger and the concurrency counts: a key created once
works on both, a key revoked is refused by both at once, a limit of 2 counts the streams
of both, the leases of a gateway killed with ``kill -9`` expire within their TTL, and
every request is settled on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

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

LEASE_TTL_S = 2.0
LIMIT = 2
# Long enough that a stream is still running when the next request comes.
LONG = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
HELLO = [{"role": "user", "content": "Say hello."}]


class Farm:
    """Gateways on one PostgreSQL and one Redis; the first one's model file is shared."""

    def __init__(self, root: Path, postgres_url: str, redis_url: str) -> None:
        self._root = root
        self._shared = {
            "DEEPWELL_DATABASE_URL": postgres_url,
            "DEEPWELL_REDIS_URL": redis_url,
            "DEEPWELL_REDIS_LEASE_TTL_S": str(LEASE_TTL_S),
            "DEEPWELL_LIMITS__CONCURRENCY__PER_ACCOUNT": str(LIMIT),
            "DEEPWELL_ENGINE__N_SEQ_MAX": "4",
        }
        self._models: Path | None = None

    @contextmanager
    def gateway(self, gateway_id: str, key: str | None = None) -> Iterator[Server]:
        """Gateway ``gateway_id`` running until the block ends (started again on its own
        data directory if it ran before)."""
        data_dir = self._root / gateway_id
        if not data_dir.exists():
            data_dir.mkdir()
            if self._models is None:
                self._models = data_dir / "models"
            else:
                (data_dir / "models").symlink_to(self._models, target_is_directory=True)
        env = server_env(data_dir, DEEPWELL_BILLING__GATEWAY_ID=gateway_id, **self._shared)
        with running_server(data_dir, env, key=key) as server:
            yield server


@pytest.fixture(scope="module")
def farm(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Farm:
    wipe_postgres(postgres_url)
    return Farm(tmp_path_factory.mktemp("deepwell-gateways"), postgres_url, redis_url)


@pytest.fixture(scope="module")
def gateways(farm: Farm) -> Iterator[tuple[Server, Server]]:
    with ExitStack() as stack:
        a = stack.enter_context(farm.gateway("a"))
        b = stack.enter_context(farm.gateway("b", key=a.key))
        yield a, b


def chat(server: Server, key: str, **fields: Any) -> httpx.Response:
    body = {
        "model": "deepseek-v4-flash",
        "messages": HELLO,
        "max_tokens": 2,
        **PLAIN,
        **fields,
    }
    return httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


@contextmanager
def streams(server: Server, key: str, count: int) -> Iterator[list[Iterator[str]]]:
    """``count`` long streams of ``key`` on ``server``, each past its first tokens, open
    until the block ends (then the client goes away)."""
    opened: list[Iterator[str]] = []
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=60))
        for _ in range(count):
            response = stack.enter_context(
                client.stream(
                    "POST",
                    "/chat/completions",
                    json={
                        "model": "deepseek-v4-flash",
                        "messages": LONG,
                        "max_tokens": 2000,
                        "temperature": 0,  # sampled, a stream might end before the checks
                        "stream": True,
                        **PLAIN,
                    },
                    headers={"Authorization": f"Bearer {key}"},
                )
            )
            assert response.status_code == 200
            # The role chunk, then the engine's first tokens: the stream is running.
            lines = response.iter_lines()
            chunks = [
                json.loads(line.removeprefix("data: "))
                for line in itertools.islice(lines, 6)
                if line
            ]
            assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks), chunks
            opened.append(lines)
        yield opened


def admitted_within(server: Server, key: str, timeout: float) -> float:
    """Seconds until a request of ``key`` is sent that is not refused with 429."""
    began = time.monotonic()
    while True:
        sent = time.monotonic()
        response = chat(server, key, max_tokens=1)
        if response.status_code != 429:
            break
        assert sent - began < timeout, response.text
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    return sent - began


def settled(server: Server, account: str, timeout: float = 20) -> dict[str, Decimal]:
    """The account's balance once nothing is held."""
    deadline = time.monotonic() + timeout
    while True:
        (usd,) = deepwell_json(server.env, "accounts", "balance", account)["balances"]
        if Decimal(usd["held"]) == 0 or time.monotonic() > deadline:
            return {name: Decimal(value) for name, value in usd.items() if name != "currency"}
        time.sleep(0.2)


def ledger_requests(server: Server, account: str) -> int:
    report = deepwell_json(server.env, "usage", "--account", account)
    return sum(row["requests"] for row in report["usage"])


def test_a_key_created_once_works_on_both_and_is_revoked_on_both(
    gateways: tuple[Server, Server],
) -> None:
    a, b = gateways
    created = deepwell_json(a.env, "keys", "create", "--account", "shared")
    deepwell_json(a.env, "accounts", "topup", "shared", "5")
    assert chat(a, created["key"]).status_code == 200
    assert chat(b, created["key"]).status_code == 200

    deepwell_json(b.env, "keys", "revoke", created["key_id"])
    assert chat(a, created["key"]).status_code == 401
    assert chat(b, created["key"]).status_code == 401

    assert settled(a, "shared")["held"] == 0
    assert ledger_requests(b, "shared") == 2


def test_the_concurrency_limit_counts_both_gateways(gateways: tuple[Server, Server]) -> None:
    a, b = gateways
    key = create_key(a.env, "limited")
    with streams(a, key, LIMIT):
        refused = chat(b, key)
        assert refused.status_code == 429
        assert f"current concurrency is {LIMIT + 1}" in refused.json()["error"]["message"]
        assert chat(a, key).status_code == 429
    # The streams' places come back when they end (the client went away).
    admitted_within(b, key, timeout=20)
    assert settled(a, "limited")["held"] == 0
    assert ledger_requests(a, "limited") == LIMIT + 1


def test_a_killed_gateway_leaks_no_place(farm: Farm, gateways: tuple[Server, Server]) -> None:
    a, _ = gateways
    key = create_key(a.env, "crash")
    with farm.gateway("c", key=key) as doomed, streams(doomed, key, LIMIT):
        assert chat(a, key).status_code == 429
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)
        freed_after = admitted_within(a, key, timeout=LEASE_TTL_S + 10)
    # Within the TTL (a lease was refreshed at most a third of it before the kill), with
    # room for a loaded machine; a leaked lease would never be freed.
    assert freed_after < 3 * LEASE_TTL_S
    # Gateway a's request is settled; the killed one's holds wait for gateway c's next
    # start (or billing.stale_hold_hours), which releases them.
    assert ledger_requests(a, "crash") == 1
    assert settled(a, "crash", timeout=1)["held"] > 0
    with farm.gateway("c", key=key):
        assert settled(a, "crash")["held"] == 0
