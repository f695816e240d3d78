"""What third-party clients send to ``POST /chat/completions``, and what they need back,
over HTTP on the fake engine (tests/clients drives the real clients)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from http_fakes import REPLY

CALL = {
    "id": "call_00_x",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def chat(**fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return fields


def sse_payloads(response: httpx.Response) -> list[Any]:
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-1] == ""
    out: list[Any] = []
    for block in blocks[:-1]:
        data = block.removeprefix("data: ")
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def ok(client: httpx.AsyncClient, body: dict[str, Any], path: str = "") -> dict[str, Any]:
    response = await client.post(f"{path}/chat/completions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("reasoning", ["", " "])
@pytest.mark.parametrize("thinking", ["enabled", "disabled"])
async def test_empty_reasoning_content_on_assistant_turns(
    client: httpx.AsyncClient, reasoning: str, thinking: str
) -> None:
    """Continue and the AI SDK send ``""`` on every assistant turn, LiteLLM ``" "``."""
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": reasoning,
            "tool_calls": [CALL],
        },
        {"role": "tool", "tool_call_id": "call_00_x", "content": "sunny"},
        {"role": "assistant", "content": "Sunny.", "reasoning_content": reasoning},
        {"role": "user", "content": "And tomorrow?"},
    ]
    body = chat(messages=messages, tools=[WEATHER], thinking={"type": thinking}, max_tokens=40)
    await ok(client, body)


async def test_a_stray_suffix_in_a_chat_body_is_ignored(client: httpx.AsyncClient) -> None:
    """LiteLLM's text completion sends ``suffix`` to the chat endpoint."""
    result = await ok(client, chat(suffix="    return x", thinking={"type": "disabled"}), "/beta")
    assert result["choices"][0]["message"]["content"] == REPLY


async def test_effort_none_is_a_reply_without_thinking(client: httpx.AsyncClient) -> None:
    """pydantic-ai's ``thinking=False``."""
    result = await ok(client, chat(reasoning_effort="none"))
    assert "reasoning_content" not in result["choices"][0]["message"]


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high", "xhigh", "max", "ultra"])
async def test_every_effort_of_deepseeks_table_is_accepted(
    client: httpx.AsyncClient, effort: str
) -> None:
    result = await ok(client, chat(reasoning_effort=effort, max_tokens=8))
    assert "reasoning_content" in result["choices"][0]["message"]


async def test_max_completion_tokens_caps_the_reply(client: httpx.AsyncClient) -> None:
    """langchain-openai's ChatOpenAI sends ``max_completion_tokens``."""
    result = await ok(client, chat(max_completion_tokens=3, thinking={"type": "disabled"}))
    assert result["choices"][0]["message"]["content"] == REPLY[:3]
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    "messages",
    [
        # Roo Code: the system prompt as the first user message.
        [{"role": "user", "content": "You are Roo."}, {"role": "user", "content": "hi"}],
        # aider: a system message after the user's.
        [{"role": "user", "content": "hi"}, {"role": "system", "content": "Reply briefly."}],
    ],
)
async def test_unusual_message_orders(
    client: httpx.AsyncClient, messages: list[dict[str, Any]]
) -> None:
    await ok(client, chat(messages=messages, temperature=0, thinking={"type": "disabled"}))


@pytest.mark.parametrize("stream_options", [None, {"include_usage": True}])
async def test_stream_ends_with_finish_reason_and_usage_then_done(
    client: httpx.AsyncClient, stream_options: dict[str, Any] | None
) -> None:
    """Usage on the chunk with ``finish_reason`` whether or not it was asked for
    (langchain-deepseek never asks); never a chunk without choices or after usage."""
    body = chat(stream=True, thinking={"type": "disabled"})
    if stream_options is not None:
        body["stream_options"] = stream_options
    response = await client.post("/chat/completions", json=body)
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(len(chunk["choices"]) == 1 for chunk in chunks)
    assert all(chunk["id"] == chunks[0]["id"] for chunk in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == len(REPLY)
    # The key's presence follows include_usage: null before the last chunk, or absent.
    earlier = [("usage" in c, c.get("usage")) for c in chunks[:-1]]
    expected = (True, None) if stream_options else (False, None)
    assert set(earlier) == {expected}
