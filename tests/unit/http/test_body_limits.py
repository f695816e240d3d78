"""Bounded request bodies: too large is a 413 read no further than the limit; JSON
nested too deeply, or too many messages, content parts or tools, a 400 naming the limit
(in Anthropic's envelope on its routes); none is ever a 500."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from http_fakes import KEY, FakeWallet

from deepwell.http.body import nests_deeper_than
from deepwell.settings import RequestLimits, Settings

CHAT = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}
PLAIN = {"thinking": {"type": "disabled"}}
LIMITS = RequestLimits(
    max_body_bytes=64 * 1024, max_json_depth=16, max_messages=8, max_content_parts=4, max_tools=3
)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
ANTHROPIC = "/anthropic/v1/messages"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.limits = LIMITS
    return settings


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/chat/completions", "/beta/completions"])
async def test_a_body_over_the_limit_is_a_413(client: httpx.AsyncClient, path: str) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "x" * 100_000}]}
    response = await client.post(path, json=body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "65536 bytes" in error["message"]


async def test_a_body_without_a_length_is_cut_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    response = await client.post("/chat/completions", content=chunks())
    assert response.status_code == 413


async def test_a_body_under_the_limit_is_served(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "thinking": {"type": "disabled"}}
    assert (await client.post("/chat/completions", json=body)).status_code == 200


@pytest.mark.parametrize("depth", [1_000, 50_000])
async def test_json_nested_too_deeply_is_a_client_error(
    client: httpx.AsyncClient, wallet: FakeWallet, depth: int
) -> None:
    deep = "[" * depth + "]" * depth
    raw = json.dumps(CHAT)[:-1] + f', "extra": {deep}}}'
    response = await client.post("/chat/completions", content=raw)
    assert response.status_code in (400, 413, 422)
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_deeply_nested_tool_arguments_are_no_500(client: httpx.AsyncClient) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": deep}}
    body = {
        **CHAT,
        "thinking": {"type": "disabled"},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    response = await client.post("/chat/completions", json=body)
    assert response.status_code < 500, response.text


async def test_a_client_gone_mid_body_is_one_info_line(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"model": "deepseek', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/chat/completions",
        "raw_path": b"/chat/completions",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("deepwell.test", 80),
        "client": ("127.0.0.1", 1234),
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }
    with caplog.at_level(logging.INFO):
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]


@pytest.mark.parametrize(
    ("text", "limit", "deeper"),
    [
        ("[[[]]]", 3, False),
        ("[[[[]]]]", 3, True),
        ('{"a": {"b": [1, {"c": []}]}}', 5, False),
        ('{"a": {"b": [1, {"c": [[]]}]}}', 5, True),
        ('["[[[[[[", "{{{{{{"]', 1, False),
        ('["\\"[[[[", "\\\\", [[]]]', 3, False),
        ('["\\\\", [[[[]]]]]', 3, True),
        ('["a\\\\\\"[[[["]', 1, False),
        ("[]" * 100, 1, False),
    ],
)
def test_depth_counts_brackets_outside_strings(text: str, limit: int, deeper: bool) -> None:
    assert nests_deeper_than(text.encode(), limit) is deeper


def test_depth_is_checked_in_linear_time() -> None:
    raw = nested(4 << 20).encode()
    assert nests_deeper_than(raw, 64)
    assert not nests_deeper_than(b"[" + b"[]," * 2_000_000 + b"[]]", 64)


async def test_json_over_the_depth_limit_is_a_400_naming_it(
    client: httpx.AsyncClient, wallet: FakeWallet
) -> None:
    body = json.dumps({**CHAT, **PLAIN, "extra": json.loads(nested(16))})
    response = await client.post("/chat/completions", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "limits.max_json_depth" in error["message"]
    assert "16 levels" in error["message"]
    assert not wallet.holds
    assert not wallet.charges


async def test_json_at_the_depth_limit_is_served(client: httpx.AsyncClient) -> None:
    extra = {"extra": json.loads(nested(15)), "note": "[{" * 100}
    body = {**CHAT, **PLAIN, "tools": [TOOL], **extra}
    assert (await client.post("/chat/completions", json=body)).status_code == 200


@pytest.mark.parametrize(
    ("extra", "param", "setting"),
    [
        ({"messages": [{"role": "user", "content": "hi"}] * 9}, "messages", "max_messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 5}]},
            "messages[0].content",
            "max_content_parts",
        ),
        ({"tools": [TOOL] * 4}, "tools", "max_tools"),
    ],
)
async def test_too_many_items_are_a_400_naming_the_limit(
    client: httpx.AsyncClient, wallet: FakeWallet, extra: dict[str, Any], param: str, setting: str
) -> None:
    response = await client.post("/chat/completions", json={**CHAT, **PLAIN, **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert f"limits.{setting}" in error["message"]
    assert not wallet.charges


async def test_items_at_the_limits_are_served(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}] * 4}] * 8
    body = {**CHAT, **PLAIN, "messages": messages, "tools": [TOOL] * 3}
    assert (await client.post("/chat/completions", json=body)).status_code == 200


ANTHROPIC_HI = {"model": "deepseek-v4-flash", "max_tokens": 8, **PLAIN}


@pytest.mark.parametrize(
    ("extra", "setting"),
    [
        ({"messages": [{"role": "user", "content": "hi"}] * 9}, "max_messages"),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "system": [{"type": "text", "text": "a"}] * 5,
            },
            "max_content_parts",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "text", "text": "a"}] * 4,
                            }
                        ],
                    }
                ]
            },
            "max_content_parts",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "extra": json.loads(nested(16))},
            "max_json_depth",
        ),
    ],
)
async def test_anthropic_limits_answer_in_its_envelope(
    client: httpx.AsyncClient, extra: dict[str, Any], setting: str
) -> None:
    for path in (ANTHROPIC, ANTHROPIC + "/count_tokens"):
        response = await client.post(path, json={**ANTHROPIC_HI, **extra})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
        assert f"limits.{setting}" in body["error"]["message"]
