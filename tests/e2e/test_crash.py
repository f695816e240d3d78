"""``kill -9`` under load, then a restart on the same data directory: the server starts,
cache files it cannot trust are removed, never used, the holds of the killed run are
released, requests succeed, and the ledger adds up."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    PLAIN,
    Server,
    create_key,
    deepwell_json,
    running_server,
    server_env,
)

pytestmark = pytest.mark.e2e

ACCOUNT = "crash"
# Prompts of several cache blocks, each different from its first words on, so that no
# two share a block.
SAVED = "Alpha. " + "Read this list and count its items: apples, pears, plums. " * 40
LOAD = [
    f"Request {n}. " + "Summarise: the scheduler batches every sequence. " * 40 for n in range(8)
]


def ask(server: Server, content: str, max_tokens: int) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": "deepseek-v4-flash",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
            **PLAIN,
        },
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=120,
    )


def cache_files(data_dir: Path) -> set[Path]:
    """The saved states; not a ``.…tmp`` file being written (it is renamed when done)."""
    folder = data_dir / "cache"
    return {p for p in folder.glob("*/*") if p.is_file() and not p.name.startswith(".")}


def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def held(env: dict[str, str]) -> Decimal:
    balances = deepwell_json(env, "accounts", "balance", ACCOUNT)["balances"]
    return sum((Decimal(b["held"]) for b in balances), Decimal(0))


def total(env: dict[str, str]) -> Decimal:
    balances = deepwell_json(env, "accounts", "balance", ACCOUNT)["balances"]
    return sum((Decimal(b["total_balance"]) for b in balances), Decimal(0))


def rows(data_dir: Path, table: str) -> int:
    with sqlite3.connect(data_dir / "deepwell.db") as db:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return int(count)


def load(server: Server, stop: threading.Event) -> list[threading.Thread]:
    """A stream of long requests per prompt of ``LOAD``, cut off by the kill."""

    def send(content: str) -> None:
        while not stop.is_set():
            try:
                ask(server, content, 64)
            except httpx.TransportError:
                return

    threads = [threading.Thread(target=send, args=(content,)) for content in LOAD]
    for thread in threads:
        thread.start()
    return threads


def test_a_server_killed_under_load_restarts_clean(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    key = create_key(env, ACCOUNT)
    funded = total(env)
    with running_server(tmp_path, env, key=key) as first:
        assert ask(first, SAVED, 4).status_code == 200
        until(lambda: bool(cache_files(tmp_path)))
        saved = cache_files(tmp_path)
        stop = threading.Event()
        threads = load(first, stop)
        until(lambda: held(env) > 0)
        time.sleep(2)  # let prompts be read and cache files written
        first.process.kill()
        first.process.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert rows(tmp_path, "holds") > 0, "the kill left no request open"

    # What a crash mid-write leaves, and files that do not verify under valid names.
    folder = next(iter(saved)).parent
    temporary = folder / f".{next(iter(saved)).name}.0123456789abcdef.tmp"
    temporary.write_bytes(b"DWKV2 half a file")
    truncated = {path: path.read_bytes()[: path.stat().st_size // 2] for path in saved}
    for path, data in truncated.items():
        path.write_bytes(data)

    with running_server(tmp_path, env, key=key) as second:
        assert rows(tmp_path, "holds") == 0
        assert held(env) == 0
        assert (
            "released a hold left by an unfinished request" in (tmp_path / "serve.log").read_text()
        )
        assert not temporary.exists()
        assert not list(folder.glob(".*.tmp")), "a temporary file survived the start"

        again = ask(second, SAVED, 4)
        assert again.status_code == 200, again.text
        usage = again.json()["usage"]
        assert usage["prompt_cache_hit_tokens"] == 0, "a truncated cache file was used"
        # Read, refused and removed (a file there now is the state saved anew).
        assert second.engine_health()["cache"]["disk"]["errors"] >= 1
        for path, data in truncated.items():
            assert not path.exists() or path.read_bytes() != data

        for content in LOAD[:2]:
            assert ask(second, content, 4).status_code == 200

    assert rows(tmp_path, "holds") == 0
    with sqlite3.connect(tmp_path / "deepwell.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    cost = Decimal(deepwell_json(env, "usage", "--account", ACCOUNT)["total_cost"]["USD"])
    assert funded - total(env) == cost
    assert held(env) == 0
