"""The deepwell command line, run in-process against a database under tmp_path."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from deepwell.accounts.keys import KeyStore
from deepwell.cli import main
from deepwell.settings import Settings
from deepwell.store.db import open_database
from deepwell.vocabulary import Caller

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only passed to a stub server


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("DEEPWELL_DATA_DIR", str(directory))
    monkeypatch.delenv("DEEPWELL_DATABASE_URL", raising=False)
    monkeypatch.delenv("DEEPWELL_CONFIG_FILE", raising=False)
    return directory


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Replace deepwell.server with a stub; collects the settings ``run`` receives."""
    calls: list[Settings] = []
    server = types.ModuleType("deepwell.server")
    server.run = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deepwell.server", server)
    return calls


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run ``deepwell ARGV --json``; stdout must be exactly one JSON object."""
    main([*argv, "--json"])
    out = capsys.readouterr().out
    payload = json.loads(out)
    assert isinstance(payload, dict)
    assert out == json.dumps(payload) + "\n"
    return payload


def authenticate(data_dir: Path, key: str) -> Caller | None:
    async def check() -> Caller | None:
        async with await open_database(f"sqlite+aiosqlite:///{data_dir / 'deepwell.db'}") as db:
            return await KeyStore(db).authenticate(key)

    return asyncio.run(check())


def test_create_json_is_one_object(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    payload = run_json(capsys, "keys", "create", "--account", "alice", "--name", "ci")
    assert set(payload) == {"key", "key_id", "account", "name", "created_at"}
    assert re.fullmatch(r"sk-[0-9a-f]{32}", payload["key"])
    assert payload["account"] == "alice"
    assert payload["name"] == "ci"
    assert (data_dir / "deepwell.db").is_file()
    caller = authenticate(data_dir, payload["key"])
    assert caller is not None
    assert caller.key_id == payload["key_id"]


def test_create_human_output_shows_key_once(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "create", "--account", "alice"])
    out = capsys.readouterr().out
    (key,) = re.findall(r"sk-[0-9a-f]{32}", out)
    assert out.count(key) == 1
    assert "will not be shown again" in out


def test_list_json_never_contains_keys(capsys: pytest.CaptureFixture[str]) -> None:
    alice = run_json(capsys, "keys", "create", "--account", "alice")
    bob = run_json(capsys, "keys", "create", "--account", "bob", "--name", "b")
    listing = run_json(capsys, "keys", "list")
    assert [item["key_id"] for item in listing["keys"]] == [alice["key_id"], bob["key_id"]]
    assert set(listing["keys"][0]) == {
        "key_id",
        "account",
        "name",
        "last4",
        "created_at",
        "revoked_at",
    }
    assert listing["keys"][1]["last4"] == bob["key"][-4:]
    assert alice["key"] not in json.dumps(listing)
    only_bob = run_json(capsys, "keys", "list", "--account", "bob")
    assert [item["account"] for item in only_bob["keys"]] == ["bob"]


def test_list_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "list"])
    assert "No API keys" in capsys.readouterr().out
    created = run_json(capsys, "keys", "create", "--account", "alice")
    main(["keys", "list"])
    out = capsys.readouterr().out
    assert created["key_id"] in out
    assert created["key"] not in out
    assert created["key"][-4:] in out


def test_revoke_stops_authentication(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    created = run_json(capsys, "keys", "create", "--account", "alice")
    assert authenticate(data_dir, created["key"]) is not None
    revoked = run_json(capsys, "keys", "revoke", created["key_id"])
    assert revoked == {"key_id": created["key_id"], "revoked": True}
    assert authenticate(data_dir, created["key"]) is None
    (item,) = run_json(capsys, "keys", "list")["keys"]
    assert item["revoked_at"] is not None


def test_revoke_unknown_key_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "revoke", "key_0000000000000000", "--json"])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "key_0000000000000000" in captured.err


def test_empty_account_name_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "create", "--account", " "])
    assert exit_info.value.code != 0
    assert "account name" in capsys.readouterr().err


def test_missing_config_file_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "list", "--config", str(tmp_path / "missing.toml")])
    assert exit_info.value.code != 0
    assert "missing.toml" in capsys.readouterr().err


def test_config_file_sets_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPWELL_DATA_DIR")
    elsewhere = tmp_path / "from-config"
    config = tmp_path / "deepwell.toml"
    config.write_text(f"data_dir = {json.dumps(str(elsewhere))}\n")
    run_json(capsys, "keys", "create", "--account", "alice", "--config", str(config))
    assert (elsewhere / "deepwell.db").is_file()


def test_keys_are_stored_hashed(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    created = run_json(capsys, "keys", "create", "--account", "alice")
    with sqlite3.connect(data_dir / "deepwell.db") as connection:
        dump = repr(connection.execute("SELECT * FROM api_keys").fetchall())
    connection.close()
    assert created["key"] not in dump
    assert created["key"][3:] not in dump


def test_serve_prints_default_key_once(
    capsys: pytest.CaptureFixture[str], served: list[Settings], data_dir: Path
) -> None:
    main(["serve", "--port", "9123"])
    out = capsys.readouterr().out
    (key,) = set(re.findall(r"sk-[0-9a-f]{32}", out))
    assert "will not be shown again" in out
    assert "curl http://127.0.0.1:9123/chat/completions" in out
    assert f'-H "Authorization: Bearer {key}"' in out
    assert '"model": "deepseek-v4-flash"' in out
    assert "from openai import OpenAI" in out
    assert 'base_url="http://127.0.0.1:9123"' in out
    caller = authenticate(data_dir, key)
    assert caller is not None
    assert caller.account == "default"

    main(["serve", "--port", "9123"])
    assert "sk-" not in capsys.readouterr().out
    assert [settings.port for settings in served] == [9123, 9123]


def test_serve_passes_host_and_port(
    capsys: pytest.CaptureFixture[str], served: list[Settings], data_dir: Path
) -> None:
    main(["serve", "--host", ALL_INTERFACES, "--port", "8080"])
    assert "curl http://127.0.0.1:8080/chat/completions" in capsys.readouterr().out
    main(["serve"])
    capsys.readouterr()
    explicit, default = served
    assert (explicit.host, explicit.port) == (ALL_INTERFACES, 8080)
    assert (default.host, default.port) == ("127.0.0.1", 8000)
    assert default.data_dir == data_dir


def test_serve_without_default_key_when_accounts_exist(
    capsys: pytest.CaptureFixture[str], served: list[Settings]
) -> None:
    run_json(capsys, "keys", "create", "--account", "alice")
    main(["serve"])
    assert "sk-" not in capsys.readouterr().out
    assert len(served) == 1


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage" in capsys.readouterr().err
