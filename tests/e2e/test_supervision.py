"""A server whose engine thread fails mid-stream (the ``engine.fail_at_step`` test hook): the
stream ends cleanly, the engine rebuilds itself, and the next request is served."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import PLAIN, Server, running_server, server_env

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello in five words."}]
# The prompt is read in steps 1 and 2 (its last token alone), so step 3 fails mid-answer.
FAIL_AT_STEP = "3"


def healthy_again(server: Server, timeout: float = 60) -> dict[str, Any]:
    """The engine's health figures, once ``/health`` answers 200 again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200:
            return server.engine_health()
        time.sleep(0.2)
    pytest.fail(f"/health did not answer 200 within {timeout} s: {server.engine_health()}")


def test_a_failed_engine_step_ends_the_stream_and_the_engine_recovers(tmp_path: Path) -> None:
    env = server_env(tmp_path, DEEPWELL_ENGINE__FAIL_AT_STEP=FAIL_AT_STEP)
    with running_server(tmp_path, env) as server, server.client() as client:
        stream = client.chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=16, stream=True
        )
        finishes = [c.choices[0].finish_reason for c in stream if c.choices]

        assert [f for f in finishes if f is not None] == ["insufficient_system_resource"]
        health = healthy_again(server)
        assert (health["state"], health["restarts"]) == ("ready", 1)
        again = client.chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=16
        )
        assert again.choices[0].finish_reason in {"stop", "length"}
        assert again.choices[0].message.content
