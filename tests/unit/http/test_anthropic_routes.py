"""The Anthropic Messages API on the fake engine, through the official ``anthropic`` SDK
and raw HTTP: replies, streams, errors in Anthropic's envelope, auth headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from anthropic.types import MessageParam, ToolParam
from fastapi import FastAPI
from http_fakes import KEY, REPLY, FakeWallet

from deepwell.engine.fake import FakeEngine

FLASH = "deepseek-v4-flash"
HI: list[MessageParam] = [{"role": "user", "content": "Hi"}]
PLAIN = {"thinking": {"type": "disabled"}}


@asynccontextmanager
async def client(app: FastAPI, key: str = KEY) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The SDK on ``app`` in-process (the SDK 2.x speaks ``httpx2``)."""
    transport = httpx2.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport) as http,
    ):
        yield anthropic.AsyncAnthropic(
            api_key=key, base_url="http://deepwell.test/anthropic", http_client=http
        )


@pytest.fixture
async def sdk(app: FastAPI) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with client(app) as ready:
        yield ready


async def test_a_plain_message(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(
        model=FLASH,
        max_tokens=64,
        messages=HI,
        extra_body=PLAIN,
    )
    assert message.id.startswith("msg_")
    assert message.model == FLASH
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == REPLY  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(REPLY)
    assert message.usage.input_tokens > 0
    assert message.usage.cache_read_input_tokens == 0


async def test_claude_names_map_to_deepseek_models(sdk: anthropic.AsyncAnthropic) -> None:
    opus = await sdk.messages.create(
        model="claude-opus-4-1",
        max_tokens=8,
        messages=HI,
        extra_body=PLAIN,
    )
    assert opus.model == "deepseek-v4-pro"
    haiku = await sdk.messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=8,
        messages=HI,
        extra_body=PLAIN,
    )
    assert haiku.model == FLASH


async def test_an_unknown_model_is_a_400_in_anthropic_envelope(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await sdk.messages.create(model="gpt-4o", max_tokens=8, messages=HI)
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Model Not Exist"},
    }


async def test_max_tokens_past_the_model_is_lowered_not_refused(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    async with sdk.messages.stream(
        model=FLASH,
        max_tokens=32000,
        messages=HI,
        extra_body=PLAIN,
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn"


async def test_the_stream_helper_reads_the_stream(sdk: anthropic.AsyncAnthropic) -> None:
    async with sdk.messages.stream(
        model=FLASH,
        max_tokens=64,
        messages=HI,
        extra_body=PLAIN,
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(REPLY)


async def raw_events(app: FastAPI, body: dict[str, Any], **headers: str) -> list[tuple[str, Any]]:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as http,
    ):
        response = await http.post("/anthropic/v1/messages?beta=true", json=body, headers=headers)
    assert response.status_code == 200
    assert "[DONE]" not in response.text
    events = []
    for chunk in response.text.strip().split("\n\n"):
        name, data = chunk.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


async def test_the_raw_stream_has_anthropic_order(app: FastAPI) -> None:
    body = {"model": FLASH, "max_tokens": 64, "messages": HI, "stream": True, **PLAIN}
    events = await raw_events(app, body, **{"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[2] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert {data["index"] for name, data in events if "index" in data} == {0}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == len(REPLY)


async def test_a_stop_sequence_is_reported(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(
        model=FLASH,
        max_tokens=64,
        messages=HI,
        stop_sequences=["fake"],
        extra_body=PLAIN,
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "fake"
    assert message.content[0].text == "Hello from the "  # type: ignore[union-attr]


async def test_bearer_wins_over_x_api_key(app: FastAPI) -> None:
    body = {"model": FLASH, "max_tokens": 8, "messages": HI, "stream": True, **PLAIN}
    events = await raw_events(
        app, body, **{"authorization": f"Bearer {KEY}", "x-api-key": "sk-wrong"}
    )
    assert events[0][0] == "message_start"


async def test_a_wrong_key_is_a_401_in_anthropic_envelope(app: FastAPI) -> None:
    async with client(app, "sk-wrong") as wrong:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await wrong.messages.create(model=FLASH, max_tokens=8, messages=HI)
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_a_low_balance_is_a_402_billing_error(
    sdk: anthropic.AsyncAnthropic, wallet: FakeWallet
) -> None:
    wallet.refuse = True
    with pytest.raises(anthropic.PaymentRequiredError) as refused:
        await sdk.messages.create(model=FLASH, max_tokens=8, messages=HI)
    assert refused.value.status_code == 402
    assert refused.value.body["error"]["type"] == "billing_error"  # type: ignore[index]


async def test_a_tool_use_turn_without_its_thinking_is_a_400_naming_the_block(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    weather: ToolParam = {"name": "get_weather", "input_schema": {"type": "object"}}
    turn: MessageParam = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
    }
    result: MessageParam = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}],
    }
    with pytest.raises(anthropic.BadRequestError) as refused:
        await sdk.messages.create(
            model=FLASH, max_tokens=8, messages=[*HI, turn, result], tools=[weather]
        )
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "The `content[].thinking` in the thinking mode must be passed back "
            "to the API.",
        },
    }


async def test_count_tokens_uses_the_template(
    sdk: anthropic.AsyncAnthropic, engine: FakeEngine
) -> None:
    counted = await sdk.messages.count_tokens(model=FLASH, messages=HI, extra_body=PLAIN)
    assert counted.input_tokens == len("<|user|>Hi\n<|assistant|>")


async def test_models_and_the_hello_probe(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as http,
    ):
        assert (await http.head("/anthropic/api/hello")).status_code == 200
        listed = await http.get("/anthropic/v1/models", headers={"x-api-key": KEY})
    ids = [model["id"] for model in listed.json()["data"]]
    assert FLASH in ids


async def test_no_messages_is_a_400(sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await sdk.messages.create(model=FLASH, max_tokens=8, messages=[], extra_body=PLAIN)
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages: at least one message is required",
        },
    }
