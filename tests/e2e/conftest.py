"""One real ``deepwell serve`` process on the embedded model, shared by the e2e tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

STARTUP_TIMEOUT_S = 180
# Thinking mode is on by default for the V4 ids; tests of plain answers turn it off.
PLAIN = {"thinking": {"type": "disabled"}}
# A small context keeps the oversize-prompt test cheap; everything else fits easily.
TEST_CONTEXT = 8192


@dataclass(frozen=True)
class Server:
    base_url: str
    key: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    # The environment the server runs with; CLI commands on its data use it too.
    env: dict[str, str]

    def client(self, path: str = "") -> openai.OpenAI:
        return openai.OpenAI(api_key=self.key, base_url=self.base_url + path, max_retries=0)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self.key, base_url=self.base_url, max_retries=0)

    def engine_health(self) -> dict[str, Any]:
        """The health figures of the (only) engine: counts, and the cache's figures by tier."""
        response = httpx.get(f"{self.base_url}/health", timeout=5)
        engines = response.json()["engines"]
        assert len(engines) == 1
        figures: dict[str, Any] = next(iter(engines.values()))
        return figures

    def busy_after_settling(self, timeout: float = 10) -> int:
        """Busy sequences, once they reach zero or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        busy: int
        while (busy := self.engine_health()["sequences_busy"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        return busy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _deepwell(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "deepwell", *args]


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"deepwell serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"deepwell serve did not become ready:\n{log.read_text()}")


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DEEPWELL_DATA_DIR": str(data_dir),
        "DEEPWELL_ENGINE__N_CTX": str(TEST_CONTEXT),
        "DEEPWELL_ENGINE__N_SEQ_MAX": "8",
        **extra,
    }


def deepwell_json(env: dict[str, str], *args: str) -> Any:
    """Run a ``deepwell`` command with ``--json`` and return the object it prints."""
    done = subprocess.run(_deepwell(*args, "--json"), env=env, check=True, capture_output=True)
    return json.loads(done.stdout)


def create_key(env: dict[str, str], account: str, *, funds: str | None = "100") -> str:
    """A new key of ``account`` (created if new), topped up with ``funds`` USD."""
    key: str = deepwell_json(env, "keys", "create", "--account", account)["key"]
    if funds is not None:
        deepwell_json(env, "accounts", "topup", account, funds)
    return key


@contextmanager
def running_server(
    data_dir: Path, env: dict[str, str], *, key: str | None = None, python: str = sys.executable
) -> Iterator[Server]:
    """``deepwell serve`` on ``data_dir`` until the block ends (stopped gracefully), run
    by the interpreter ``python`` (this one unless told)."""
    port = _free_port()
    log = data_dir / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            _deepwell("serve", "--port", str(port), python=python),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log)
        yield Server(base_url, key or create_key(env, "e2e"), data_dir, process, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("deepwell-data")
    with running_server(data_dir, server_env(data_dir)) as running:
        yield running
