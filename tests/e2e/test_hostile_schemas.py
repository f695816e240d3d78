"""Hostile JSON Schemas against the real server: each is a fast 400 or a bounded, valid
answer, while other requests go on and ``/health`` keeps answering."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PLAIN, Server

pytestmark = pytest.mark.e2e

HOSTILE: list[dict[str, Any]] = [
    {"type": "string", "pattern": "]"},
    {"type": "string", "pattern": "a{0,100000}"},
    {"type": "string", "pattern": "(a?){300}"},
    {"type": "string", "pattern": "a{100000000}"},
    {"type": "string", "pattern": "^\\x00$"},
    {"type": "string", "pattern": ")"},
    {"type": "string", "pattern": "{"},
    {"type": "string", "pattern": "((a{1,100}){1,100}){1,100}"},
    {"type": "string", "maxLength": 100000},
    {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"},
    {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(30000)}},
    {"enum": [f"value-{i}" for i in range(50000)]},
    {"enum": []},
    {"anyOf": []},
]
# A request may take this long at most, from the first byte sent to the last received.
BOUND_S = 30


def ask(server: Server, schema: dict[str, Any]) -> tuple[httpx.Response, float]:
    body = {
        "model": "deepseek-v4-flash",
        "messages": [{"role": "user", "content": "Answer in JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        "max_tokens": 16,
        "temperature": 0,
        **PLAIN,
    }
    started = time.monotonic()
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=BOUND_S,
    )
    return response, time.monotonic() - started


def plain(server: Server) -> httpx.Response:
    body = {
        "model": "deepseek-v4-flash",
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 8,
        **PLAIN,
    }
    return httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=BOUND_S,
    )


def health_latency(server: Server) -> float:
    started = time.monotonic()
    assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
    return time.monotonic() - started


@pytest.mark.parametrize("schema", HOSTILE, ids=lambda s: json.dumps(s)[:40])
def test_a_hostile_schema_is_a_fast_400_or_a_bounded_answer(
    server: Server, schema: dict[str, Any]
) -> None:
    response, took = ask(server, schema)
    assert took < BOUND_S
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["message"].startswith("Invalid response_format: ")
        assert error["param"] == "response_format"
        # Refused at admission: no engine work, milliseconds plus the request itself.
        assert took < 5
        return
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    if choice["finish_reason"] == "stop":
        json.loads(choice["message"]["content"])
    else:
        assert choice["finish_reason"] == "length"


def test_others_are_served_while_hostile_schemas_arrive(server: Server) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        hostile = [pool.submit(ask, server, schema) for schema in HOSTILE[:8]]
        answer = pool.submit(plain, server)
        latencies = [health_latency(server) for _ in range(5)]
        results = [future.result() for future in hostile]
        assert answer.result().status_code == 200
    assert max(latencies) < 1.0
    assert all(response.status_code in (200, 400) for response, _ in results)
    assert server.process.poll() is None
    assert server.busy_after_settling() == 0


def test_hostile_tool_schemas_are_handled_the_same(server: Server) -> None:
    def function(parameters: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": "f", "strict": True, "parameters": parameters},
        }

    tool = function(
        {
            "type": "object",
            "properties": {"a": {"type": "string", "pattern": "(a?){300}"}},
            "required": ["a"],
            "additionalProperties": False,
        }
    )
    refused = function({"enum": []})
    for candidate, statuses in ((tool, {200}), (refused, {400})):
        body = {
            "model": "deepseek-v4-flash",
            "messages": [{"role": "user", "content": "Call f."}],
            "tools": [candidate],
            "tool_choice": "required",
            "max_tokens": 24,
            **PLAIN,
        }
        response = httpx.post(
            f"{server.base_url}/beta/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=BOUND_S,
        )
        assert response.status_code in statuses, response.text
    assert server.process.poll() is None
