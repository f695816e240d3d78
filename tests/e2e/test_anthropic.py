"""The Anthropic Messages API on the real model, through the official ``anthropic`` SDK
and raw HTTP: replies with either key header, the stream's event order, the SDK's
stream helper, ``count_tokens`` against usage, tool loops with and without thinking,
errors in Anthropic's envelope, and a request shaped as Claude Code sends it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, TextBlockParam, ToolParam

from deepwell.core.admission import OVERRIDES_TTL_S
from tests.e2e.conftest import Server, create_key, deepwell_json

pytestmark = pytest.mark.e2e

FLASH = "deepseek-v4-flash"
PLAIN: dict[str, Any] = {"thinking": {"type": "disabled"}}
# Anthropic's SDK no longer takes sampling parameters; the API still does.
GREEDY: dict[str, Any] = {"temperature": 0}
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello in three words."}]
SUM: list[MessageParam] = [{"role": "user", "content": "What is 2 + 3?"}]
ASK_WEATHER: list[MessageParam] = [
    {"role": "user", "content": "What is the weather like in Paris today?"}
]
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {
        "$schema": DRAFT_2020_12,
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
PASSBACK = "The `content[].thinking` in the thinking mode must be passed back to the API."


def base_url(server: Server) -> str:
    return server.base_url + "/anthropic"


@contextmanager
def bearer(server: Server, key: str | None = None) -> Iterator[anthropic.Anthropic]:
    """The SDK as 2.x sends keys (and as Claude Code's ``ANTHROPIC_AUTH_TOKEN``):
    ``Authorization: Bearer``."""
    with anthropic.Anthropic(
        auth_token=key or server.key, base_url=base_url(server), max_retries=0
    ) as client:
        yield client


@contextmanager
def x_api_key(server: Server, key: str | None = None) -> Iterator[anthropic.Anthropic]:
    """The SDK sending the key as ``x-api-key`` only (SDK 1.x, ``ANTHROPIC_API_KEY``)."""
    with anthropic.Anthropic(
        api_key=None,
        auth_token=None,
        base_url=base_url(server),
        default_headers={"x-api-key": key or server.key},
        max_retries=0,
    ) as client:
        yield client


@pytest.fixture
def sdk(server: Server) -> Iterator[anthropic.Anthropic]:
    with bearer(server) as client:
        yield client


def text_of(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


# Replies


def test_a_message_with_an_x_api_key_and_with_a_bearer_key(server: Server) -> None:
    with x_api_key(server) as client:
        first = client.messages.create(
            model=FLASH, max_tokens=16, messages=HELLO, thinking={"type": "disabled"}
        )
    with bearer(server) as client:
        # A Claude name takes its configured public model.
        second = client.messages.create(
            model="claude-haiku-4-5", max_tokens=16, messages=HELLO, extra_body=PLAIN
        )
    for message in (first, second):
        assert message.id.startswith("msg_")
        assert message.type == "message"
        assert message.role == "assistant"
        assert message.model == FLASH
        assert [block.type for block in message.content] == ["text"]
        assert text_of(message)
        assert message.stop_reason in ("end_turn", "max_tokens")
        assert message.stop_sequence is None
        assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) > 0
        assert message.usage.cache_creation_input_tokens == 0
        assert 0 < message.usage.output_tokens <= 16


def raw_stream(server: Server, body: dict[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """A streamed reply read as raw SSE: its text and its (event, data) pairs."""
    headers = {"x-api-key": server.key, "anthropic-version": "2023-06-01"}
    url = base_url(server) + "/v1/messages?beta=true"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = []
    for frame in text.strip().split("\n\n"):
        name, data = frame.split("\n")
        assert name.startswith("event: ")
        assert data.startswith("data: ")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return text, events


def blocks_in_order(events: list[tuple[str, Any]]) -> list[str]:
    """The block types of a stream, checking that every block is started, fed and
    stopped in turn, with indices 0, 1, ... and a signature before a thinking block ends."""
    kinds: list[str] = []
    open_kind: str | None = None
    signature = None
    for name, data in events:
        if name == "content_block_start":
            assert open_kind is None
            assert data["index"] == len(kinds)
            open_kind = data["content_block"]["type"]
            kinds.append(open_kind)
            signature = None
        elif name == "content_block_delta":
            assert data["index"] == len(kinds) - 1
            kind = data["delta"]["type"]
            expected = {"thinking": ("thinking_delta", "signature_delta"), "text": ("text_delta",)}
            assert kind in expected.get(open_kind or "", ("input_json_delta",))
            if kind == "signature_delta":
                signature = data["delta"]["signature"]
        elif name == "content_block_stop":
            assert data["index"] == len(kinds) - 1
            assert open_kind != "thinking" or signature
            open_kind = None
    assert open_kind is None
    return kinds


def test_the_raw_stream_in_thinking_mode(server: Server) -> None:
    body = {
        "model": FLASH,
        "max_tokens": 48,
        "messages": SUM,
        "thinking": {"type": "enabled", "budget_tokens": 16},
        "stream": True,
    }
    text, events = raw_stream(server, body)
    assert "[DONE]" not in text
    names = [name for name, _ in events]
    assert all(data["type"] == name for name, data in events)
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 0
    assert blocks_in_order(events) == ["thinking", "text"]
    # The thinking block is signed with the message id, as DeepSeek does.
    signatures = [d["delta"]["signature"] for n, d in events if d.get("delta", {}).get("signature")]
    assert signatures == [start["id"]]
    end = events[-2][1]
    assert end["delta"]["stop_reason"] in ("end_turn", "max_tokens")
    usage = end["usage"]
    assert 0 < usage["output_tokens"] <= 48
    # message_start counts the whole prompt; message_delta splits it by the cache.
    prompt = start["usage"]["input_tokens"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == prompt


def test_the_sdk_stream_helper(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model=FLASH, max_tokens=24, messages=HELLO, extra_body=PLAIN) as s:
        streamed = "".join(s.text_stream)
        plain = s.get_final_message()
    assert streamed == text_of(plain)
    assert [block.type for block in plain.content] == ["text"]
    assert plain.stop_reason in ("end_turn", "max_tokens")
    assert 0 < plain.usage.output_tokens <= 24

    with sdk.messages.stream(
        model=FLASH,
        max_tokens=48,
        messages=SUM,
        thinking={"type": "enabled", "budget_tokens": 16},
    ) as s:
        thought = s.get_final_message()
    first, second = thought.content
    assert first.type == "thinking"
    assert first.thinking
    assert first.signature == thought.id
    assert second.type == "text"
    assert second.text
    assert thought.usage.output_tokens > 0


def test_count_tokens_is_the_prompt_that_usage_reports(sdk: anthropic.Anthropic) -> None:
    system = "You are a weather assistant. " * 24
    request: dict[str, Any] = {
        "model": FLASH,
        "system": system,
        "messages": ASK_WEATHER,
        "tools": [WEATHER],
        "thinking": {"type": "disabled"},
    }
    counted = sdk.messages.count_tokens(**request).input_tokens
    first = sdk.messages.create(max_tokens=4, **request).usage
    again = sdk.messages.create(max_tokens=4, **request).usage
    assert counted > 64
    assert first.input_tokens + (first.cache_read_input_tokens or 0) == counted
    assert again.input_tokens + (again.cache_read_input_tokens or 0) == counted
    # The repeated prompt is found in the cache, in whole blocks of 64 tokens.
    assert again.cache_read_input_tokens
    assert again.cache_read_input_tokens % 64 == 0


# Tools


def test_a_tool_loop(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(
        model=FLASH,
        max_tokens=64,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        thinking={"type": "disabled"},
        extra_body=GREEDY,
    ) as s:
        asked = s.get_final_message()
    assert asked.stop_reason == "tool_use"
    (call,) = [block for block in asked.content if block.type == "tool_use"]
    assert call.id.startswith("toolu_")
    assert call.name == "get_weather"
    assert isinstance(call.input, dict)
    assert isinstance(call.input["city"], str)
    messages: list[MessageParam] = [
        *ASK_WEATHER,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": '{"temperature_c": 21, "sky": "sunny"}',
                    "is_error": False,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    # The small model may well call again with `auto`; `none` asks for the answer.
    final = sdk.messages.create(
        model=FLASH,
        max_tokens=32,
        messages=messages,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        thinking={"type": "disabled"},
        extra_body=GREEDY,
    )
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert [block.type for block in final.content] == ["text"]
    assert "<tool_call>" not in text_of(final)


def test_a_thinking_tool_loop_needs_its_thinking_block_back(sdk: anthropic.Anthropic) -> None:
    # In thinking mode a forced tool is refused, as DeepSeek refuses it.
    with pytest.raises(anthropic.BadRequestError) as forced:
        sdk.messages.create(
            model=FLASH,
            max_tokens=8,
            messages=ASK_WEATHER,
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather"},
        )
    assert forced.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Thinking mode does not support this tool_choice",
        },
    }
    # A signed thinking block from the model; the call is the client's (the embedded
    # model rarely calls a tool in thinking mode, and cannot be forced to).
    thought = sdk.messages.create(
        model=FLASH,
        max_tokens=16,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 12},
    )
    thinking = thought.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature == thought.id
    call = {
        "type": "tool_use",
        "id": "toolu_weather",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    result: MessageParam = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_weather", "content": "21C"}],
    }

    def history(*blocks: dict[str, Any]) -> list[MessageParam]:
        turn = cast(MessageParam, {"role": "assistant", "content": [*blocks, call]})
        return [*ASK_WEATHER, turn, result]

    signed = {"type": "thinking", "thinking": thinking.thinking, "signature": thinking.signature}
    # Without it: DeepSeek's 400, on count_tokens too (the same checks run).
    with pytest.raises(anthropic.BadRequestError) as dropped:
        sdk.messages.create(model=FLASH, max_tokens=8, messages=history(), tools=[WEATHER])
    assert dropped.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": PASSBACK},
    }
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.count_tokens(model=FLASH, messages=history(), tools=[WEATHER])
    # Signatures are not checked: Claude Code echoes an empty one when it got none.
    unsigned = {**signed, "signature": ""}
    counted = sdk.messages.count_tokens(model=FLASH, messages=history(unsigned), tools=[WEATHER])
    assert counted.input_tokens > 0
    answered = sdk.messages.create(
        model=FLASH,
        max_tokens=24,
        messages=history(signed),
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 12},
    )
    reasoned = answered.content[0]
    assert reasoned.type == "thinking"
    assert reasoned.signature == answered.id
    assert answered.stop_reason in ("end_turn", "max_tokens", "tool_use")


# Errors


def test_a_wrong_key_is_a_401_in_anthropic_envelope(server: Server) -> None:
    for client_of in (bearer, x_api_key):
        with (
            client_of(server, "sk-" + "0" * 32) as client,
            pytest.raises(anthropic.AuthenticationError) as refused,
        ):
            client.messages.create(model=FLASH, max_tokens=8, messages=HELLO)
        assert refused.value.body == {
            "type": "error",
            "error": {
                "type": "authentication_error",
                "message": "Authentication Fails, Your api key: ****0000 is invalid",
            },
        }
    url = base_url(server) + "/v1/messages/count_tokens"
    body = {"model": FLASH, "messages": HELLO}
    missing = httpx.post(url, json=body, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    # Bearer wins over x-api-key, either way round.
    both = {"authorization": f"Bearer {server.key}", "x-api-key": "sk-wrong"}
    assert httpx.post(url, json=body, headers=both, timeout=10).status_code == 200
    both = {"authorization": "Bearer sk-wrong", "x-api-key": server.key}
    assert httpx.post(url, json=body, headers=both, timeout=10).status_code == 401


def test_no_money_is_a_402_billing_error(server: Server) -> None:
    key = create_key(server.env, "anthropic-broke", funds=None)
    envelope = {
        "type": "error",
        "error": {"type": "billing_error", "message": "Insufficient Balance"},
    }
    with bearer(server, key) as client:
        with pytest.raises(anthropic.PaymentRequiredError) as refused:
            client.messages.create(model=FLASH, max_tokens=8, messages=HELLO)
        assert refused.value.body == envelope
        with (
            pytest.raises(anthropic.PaymentRequiredError) as streamed,
            client.messages.stream(model=FLASH, max_tokens=8, messages=HELLO) as s,
        ):
            s.get_final_message()
        assert streamed.value.body == envelope
        # Counting runs nothing, so it costs nothing.
        assert client.messages.count_tokens(model=FLASH, messages=HELLO).input_tokens > 0


def test_over_the_concurrency_limit_is_a_429(server: Server) -> None:
    name = "anthropic-one-at-a-time"
    key = create_key(server.env, name)
    deepwell_json(server.env, "accounts", "limit", name, "--concurrency", "1")
    time.sleep(OVERRIDES_TTL_S + 0.5)  # the server reads overrides again
    body = {
        "model": FLASH,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Count from one to fifty, in words."}],
        "stream": True,
        **PLAIN,
    }
    url = base_url(server) + "/v1/messages"
    headers = {"x-api-key": key}
    with bearer(server, key) as client:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as held:
            assert held.status_code == 200
            # Kept in a name: a dropped line iterator would close the connection.
            lines = held.iter_lines()
            while next(lines) != "event: content_block_delta":
                pass
            with pytest.raises(anthropic.RateLimitError) as limited:
                client.messages.create(model=FLASH, max_tokens=8, messages=HELLO, extra_body=PLAIN)
        assert limited.value.body["type"] == "error"  # type: ignore[index]
        assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert "limit of 1" in limited.value.body["error"]["message"]  # type: ignore[index]
        # The stream closed early gives its place back.
        deadline = time.monotonic() + 10
        while True:
            try:
                client.messages.create(model=FLASH, max_tokens=1, messages=HELLO, extra_body=PLAIN)
                break
            except anthropic.RateLimitError:
                assert time.monotonic() < deadline
                time.sleep(0.2)


# Claude Code


def _cc_tool(name: str, properties: dict[str, Any], required: list[str]) -> ToolParam:
    schema = {
        "$schema": DRAFT_2020_12,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {"name": name, "description": f"The {name} tool.", "input_schema": schema}


TEXT = {"type": "string"}
CC_TOOLS: list[ToolParam] = [
    _cc_tool("Bash", {"command": TEXT, "timeout": {"type": "number"}}, ["command"]),
    _cc_tool("Read", {"file_path": TEXT, "offset": {"type": "integer"}}, ["file_path"]),
    _cc_tool("Edit", {"file_path": TEXT, "old_string": TEXT, "new_string": TEXT}, ["file_path"]),
    _cc_tool("Write", {"file_path": TEXT, "content": TEXT}, ["file_path", "content"]),
    _cc_tool("Glob", {"pattern": TEXT, "path": TEXT}, ["pattern"]),
    _cc_tool("Grep", {"pattern": TEXT, "path": TEXT}, ["pattern"]),
    _cc_tool("Agent", {"description": TEXT, "prompt": TEXT}, ["description", "prompt"]),
    _cc_tool("WebFetch", {"url": TEXT, "prompt": TEXT}, ["url", "prompt"]),
    _cc_tool(
        "TodoWrite",
        {"todos": {"type": "array", "items": {"type": "object", "properties": {"content": TEXT}}}},
        ["todos"],
    ),
    _cc_tool("Skill", {"skill": TEXT}, ["skill"]),
    _cc_tool("ToolSearch", {"query": TEXT}, ["query"]),
    _cc_tool("ScheduleWakeup", {"seconds": {"type": "integer"}}, ["seconds"]),
    {
        "name": "DeferredToolPlaceholder",
        "description": "Reserved placeholder; never call this tool.",
        "input_schema": {"type": "object", "properties": {}},
        "defer_loading": True,
    },
]
CC_SYSTEM = (
    "\nYou are an agent working with the user on software tasks in their repository. "
    "Use the tools to read, search and edit files, and to run commands. Be brief: "
    "answer in one short sentence unless the user asks for more."
)


def claude_code_request(build: str) -> dict[str, Any]:
    """A first turn as Claude Code 2.1 sends it, with its per-session billing line."""
    ephemeral: Any = {"type": "ephemeral"}
    system: list[TextBlockParam] = [
        {
            "type": "text",
            "text": f"x-anthropic-billing-header: cc_version=2.1.332.{build}; "
            "cc_entrypoint=sdk-cli;",
        },
        {
            "type": "text",
            "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
            "cache_control": ephemeral,
        },
        {"type": "text", "text": CC_SYSTEM, "cache_control": ephemeral},
    ]
    environment = "# Environment\nYou have been invoked in the following environment: linux"
    reminder = "<system-reminder>\nAttribution for git commits is off.</system-reminder>\n"
    user = {"device_id": "2b6e93aa", "account_uuid": "", "session_id": "f670b0bd-0001"}
    return {
        "model": "deepseek-v4-pro",
        "max_tokens": 32000,
        "system": system,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": reminder},
                    {"type": "text", "text": "Say hi in three words."},
                ],
            },
            {
                "role": "system",
                "content": [{"type": "text", "text": environment, "cache_control": ephemeral}],
            },
        ],
        "tools": CC_TOOLS,
        "metadata": {"user_id": json.dumps(user)},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "high"},
        # Not Claude Code's: keeps the answer to a paragraph on a slow machine.
        "stop_sequences": ["\n\n"],
        "extra_body": {"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}},
        "extra_headers": {
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "x-app": "cli",
        },
    }


def test_a_claude_code_request_and_its_prefix_cache_hit(sdk: anthropic.Anthropic) -> None:
    replies = []
    for build in ("d9f", "1db"):
        with sdk.messages.stream(**claude_code_request(build)) as s:
            replies.append(s.get_final_message())
    first, second = replies
    for message in replies:
        assert message.model == "deepseek-v4-pro"
        thinking = message.content[0]
        assert thinking.type == "thinking"
        assert thinking.signature == message.id
        assert message.stop_reason in ("end_turn", "stop_sequence", "max_tokens", "tool_use")
    prompt = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0)
    assert prompt > 512
    # The billing line is left out, so a new one changes nothing in the prompt: the
    # second turn reads all of it but its last block or two from the cache.
    hit = second.usage.cache_read_input_tokens or 0
    assert second.usage.input_tokens + hit == prompt
    assert hit > 0
    assert second.usage.input_tokens < 2 * 64
