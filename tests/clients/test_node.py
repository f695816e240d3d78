"""The OpenAI Node SDK and the Vercel AI SDK's DeepSeek provider against a real server,
run with node from ``tests/clients/node`` (its packages come from ``npm ci`` there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

PACKAGE = Path(__file__).parent / "node"
TIMEOUT_S = 600


def run_script(server: Server, script: str) -> Any:
    """What ``script`` prints, as JSON; its failure fails the test with its output."""
    node = shutil.which("node")
    if node is None or not (PACKAGE / "node_modules").is_dir():
        missing = "node" if node is None else "tests/clients/node/node_modules"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing; scripts/test runs npm ci in tests/clients/node")
        pytest.skip(f"{missing} is missing (run: npm ci --prefix tests/clients/node)")
    env = {**os.environ, "DEEPWELL_BASE_URL": server.base_url, "DEEPWELL_API_KEY": server.key}
    done = subprocess.run(
        [node, script],
        cwd=PACKAGE,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_openai_node_sdk(server: Server) -> None:
    out = run_script(server, "openai_sdk.mjs")
    assert out["reply"]
    assert (
        out["usage"]["prompt_cache_hit_tokens"] + out["usage"]["prompt_cache_miss_tokens"]
        == (out["usage"]["prompt_tokens"])
    )
    assert out["stream"]["reasoning"]
    assert out["stream"]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert out["call"]["name"] == "get_weather"
    assert isinstance(out["call"]["arguments"]["city"], str)
    # The stream helper keeps the usage of the last chunk that carries an id.
    assert out["helperUsage"]["completion_tokens"] > 0
    assert isinstance(out["fim"], str)


def test_vercel_ai_sdk_stream_text_with_a_tool(server: Server) -> None:
    out = run_script(server, "ai_sdk.mjs")
    assert out["asked"]
    assert out["finishReasons"][0] == "tool-calls"
    # The answer's prompt starts with the call's: the tools stay in it.
    assert out["usage"]["inputTokenDetails"]["cacheReadTokens"] > 0
