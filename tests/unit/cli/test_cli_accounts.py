"""``deepwell accounts`` and ``deepwell usage``, run in-process on a database under tmp_path."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import types
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.unit.charges import charge

from deepwell.billing.balances import Balances
from deepwell.billing.ledger import Charge, Ledger
from deepwell.cli import main
from deepwell.settings import Settings
from deepwell.store.db import open_database


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("DEEPWELL_DATA_DIR", str(directory))
    return directory


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    main([*argv, "--json"])
    out = capsys.readouterr().out
    payload = json.loads(out)
    assert out == json.dumps(payload) + "\n"
    return payload


def test_topup_and_balance_at_full_precision(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    added = run_json(capsys, "accounts", "topup", "alice", "2.5")
    assert added["balance"] == {
        "currency": "USD",
        "total_balance": "2.50",
        "granted_balance": "0.00",
        "topped_up_balance": "2.50",
        "held": "0.00",
    }
    run_json(capsys, "accounts", "topup", "alice", "0.000000001", "--granted")
    run_json(capsys, "accounts", "topup", "alice", "3", "--currency", "cny")
    balance = run_json(capsys, "accounts", "balance", "alice")
    assert balance["account"] == "alice"
    cny, usd = balance["balances"]
    assert cny["currency"] == "CNY"
    assert cny["total_balance"] == "3.00"
    assert usd["granted_balance"] == "0.000000001"
    assert usd["total_balance"] == "2.500000001"


def test_human_output_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    main(["accounts", "topup", "alice", "1"])
    out = capsys.readouterr().out
    assert "Added 1.00 USD (topped-up) to alice." in out
    main(["accounts", "list"])
    out = capsys.readouterr().out
    assert "alice" in out
    assert "1.00" in out


def test_accounts_list(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", "bob")
    run_json(capsys, "keys", "create", "--account", "alice")
    run_json(capsys, "accounts", "topup", "bob", "1")
    listed = run_json(capsys, "accounts", "list")["accounts"]
    assert [a["account"] for a in listed] == ["alice", "bob"]
    assert listed[0]["balances"] == []
    assert listed[1]["balances"][0]["total_balance"] == "1.00"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["accounts", "topup", "nobody", "1"], "no account named 'nobody'"),
        (["accounts", "balance", "nobody"], "no account named 'nobody'"),
        (["accounts", "topup", "alice", "1", "--currency", "US"], "not a currency code"),
        (["accounts", "topup", "alice", "1e-12"], "decimal places"),
    ],
)
def test_errors_go_to_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


@pytest.mark.parametrize("amount", ["-1", "0", "ten", "nan", "inf"])
def test_bad_amounts_are_usage_errors(capsys: pytest.CaptureFixture[str], amount: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["accounts", "topup", "alice", amount])
    assert exit_info.value.code == 2


def _charge(n: int, at: datetime) -> Charge:
    return charge(
        f"r{n}", 1, hit_tokens=64, miss_tokens=64, output_tokens=100, started_at=at, finished_at=at
    )


def test_usage_per_day_and_model(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)

    async def settle() -> None:
        async with await open_database(Settings().database) as database:
            ledger = Ledger(database, charging=False, gateway_id="t")
            for n in range(2):
                await ledger.settle(_charge(n, at))

    asyncio.run(settle())
    report = run_json(capsys, "usage", "--account", "alice", "--since", "2026-12-01")
    (row,) = report["usage"]
    assert row["day"] == "2026-12-01"
    assert row["requests"] == 2
    assert row["cache_hit_ratio"] == 0.5
    assert row["cost"] == "0.000074278"
    assert report["total_cost"] == {"USD": "0.000074278"}
    assert run_json(capsys, "usage", "--until", "2026-11-30")["usage"] == []
    main(["usage"])
    assert "deepseek-v4-flash" in capsys.readouterr().out


def test_the_first_start_grants_the_default_account(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = types.ModuleType("deepwell.server")
    server.run = lambda settings: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deepwell.server", server)
    for _ in range(2):
        main(["serve"])
        capsys.readouterr()
        balances = run_json(capsys, "accounts", "balance", "default")["balances"]
        assert balances[0]["granted_balance"] == "10.00"
        assert balances[0]["total_balance"] == "10.00"


# Concurrency limits. The defaults: 8 engine sequences times capacity_factor 4, lowered in
# proportion below 1 USD available, never under 1.

DEFAULT_LIMIT = 32
MODELS = ("deepseek-v4-flash", "deepseek-v4-pro")


def _every(limit: int) -> dict[str, int]:
    return dict.fromkeys(MODELS, limit)


def _funded(capsys: pytest.CaptureFixture[str], name: str = "alice") -> None:
    run_json(capsys, "keys", "create", "--account", name)
    run_json(capsys, "accounts", "topup", name, "5")


def test_limit_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    _funded(capsys)
    assert run_json(capsys, "accounts", "limit", "alice", "--concurrency", "3") == {
        "account": "alice",
        "model": "*",
        "override": 3,
        "overrides": {"*": 3},
        "concurrency": _every(3),
    }
    assert run_json(capsys, "accounts", "balance", "alice")["concurrency"] == _every(3)


def test_limit_one_model_over_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    _funded(capsys)
    run_json(capsys, "accounts", "limit", "alice", "--concurrency", "3")
    limited = run_json(
        capsys, "accounts", "limit", "alice", "--concurrency", "50", "--model", "deepseek-v4-pro"
    )
    assert limited["overrides"] == {"*": 3, "deepseek-v4-pro": 50}
    assert limited["concurrency"] == {"deepseek-v4-flash": 3, "deepseek-v4-pro": 50}


def test_clear_restores_the_configured_limit(capsys: pytest.CaptureFixture[str]) -> None:
    _funded(capsys)
    run_json(capsys, "accounts", "limit", "alice", "--concurrency", "3")
    cleared = run_json(capsys, "accounts", "limit", "alice", "--clear")
    assert cleared["override"] is None
    assert cleared["overrides"] == {}
    assert cleared["concurrency"] == _every(DEFAULT_LIMIT)


def test_overrides_are_per_account(capsys: pytest.CaptureFixture[str]) -> None:
    _funded(capsys, "alice")
    _funded(capsys, "bob")
    run_json(capsys, "accounts", "limit", "alice", "--concurrency", "2")
    assert run_json(capsys, "accounts", "balance", "bob")["concurrency"] == _every(DEFAULT_LIMIT)


def test_configured_limits_apply_without_override(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPWELL_LIMITS__CONCURRENCY__PER_ACCOUNT", "6")
    monkeypatch.setenv("DEEPWELL_LIMITS__CONCURRENCY__PER_MODEL", '{"deepseek-v4-pro": 2}')
    _funded(capsys)
    balance = run_json(capsys, "accounts", "balance", "alice")
    assert balance["concurrency"] == {"deepseek-v4-flash": 6, "deepseek-v4-pro": 2}


@pytest.mark.parametrize(
    ("topped_up", "held", "limit"),
    [(None, None, 1), ("0.5", None, 16), ("1", "0.75", 8), ("0.01", None, 1), ("1", None, 32)],
)
def test_a_low_balance_lowers_the_limit(
    capsys: pytest.CaptureFixture[str], topped_up: str | None, held: str | None, limit: int
) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    if topped_up is not None:
        run_json(capsys, "accounts", "topup", "alice", topped_up)
    if held is not None:
        _hold("alice", Decimal(held))
    assert run_json(capsys, "accounts", "balance", "alice")["concurrency"] == _every(limit)


def test_other_currencies_do_not_count(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    run_json(capsys, "accounts", "topup", "alice", "100", "--currency", "CNY")
    assert run_json(capsys, "accounts", "balance", "alice")["concurrency"] == _every(1)


def test_billing_off_ignores_the_balance(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPWELL_BILLING__ENABLED", "false")
    run_json(capsys, "keys", "create", "--account", "alice")
    run_json(capsys, "accounts", "limit", "alice", "--concurrency", "5")
    assert run_json(capsys, "accounts", "balance", "alice")["concurrency"] == _every(5)


def test_limits_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    main(["accounts", "limit", "alice", "--concurrency", "4", "--model", "deepseek-v4-pro"])
    out = capsys.readouterr().out
    assert "alice: at most 4 at once on deepseek-v4-pro." in out
    assert "MODEL" in out
    assert "CONCURRENCY" in out
    assert "Lowered for a low balance: under 1.00 USD available." in out
    run_json(capsys, "accounts", "topup", "alice", "2")
    main(["accounts", "balance", "alice"])
    out = capsys.readouterr().out
    assert "2.00" in out
    assert re.search(r"deepseek-v4-flash\s+32\b", out)
    assert re.search(r"deepseek-v4-pro\s+4\b", out)
    assert "Lowered" not in out
    main(["accounts", "limit", "alice", "--clear"])
    assert "Removed alice's own limit on every model." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--concurrency", "2", "--model", "deepseek-chat"],
            "not a public model id: 'deepseek-chat'",
        ),
        (["--concurrency", "2", "--model", ""], "not a public model id: ''"),
        (["--clear", "--model", "gpt-4"], "one of: deepseek-v4-flash, deepseek-v4-pro, *"),
    ],
)
def test_limit_unknown_model_fails(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _funded(capsys)
    with pytest.raises(SystemExit) as exit_info:
        main(["accounts", "limit", "alice", *argv])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in " ".join(captured.err.split())
    assert run_json(capsys, "accounts", "balance", "alice")["concurrency"] == _every(32)


def test_limit_unknown_account_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["accounts", "limit", "nobody", "--concurrency", "2", "--json"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no account named 'nobody'" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--concurrency", "0"],
        ["--concurrency", "-2"],
        ["--concurrency", "two"],
        ["--concurrency", "2", "--clear"],
    ],
)
def test_limit_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["accounts", "limit", "alice", *argv])
    assert exit_info.value.code == 2


def _hold(name: str, amount: Decimal) -> None:
    async def hold() -> None:
        async with await open_database(Settings().database) as database:
            found = await Balances(database).named(name)
            ledger = Ledger(database, charging=True, gateway_id="t")
            assert await ledger.hold("r1", found.account_id, "USD", amount) is not None

    asyncio.run(hold())
