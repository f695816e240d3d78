"""Bounded request bodies: too large is a 413 read no further than the limit; JSON
nested too deeply is a 400; neither is ever a 500."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from http_fakes import KEY, FakeWallet

from deepwell.settings import RequestLimits, Settings

CHAT = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.limits = RequestLimits(max_body_bytes=64 * 1024)
    return settings


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
