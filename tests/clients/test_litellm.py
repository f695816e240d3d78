"""LiteLLM's ``deepseek/`` provider against a real server, on the ``/beta`` base that is
LiteLLM's default for DeepSeek (every chat goes to ``/beta/chat/completions``)."""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest
from litellm.types.utils import (
    ChatCompletionMessageToolCall,
    ModelResponse,
    TextCompletionResponse,
    Usage,
)

from tests.clients.conftest import MODEL, PLAIN
from tests.e2e.conftest import Server

pytestmark = [
    pytest.mark.e2e,
    # LiteLLM's own types, built when it first calls a provider.
    pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning"),
]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def usage_of(reply: object) -> Usage:
    """LiteLLM sets ``usage`` on its responses without declaring it."""
    usage = getattr(reply, "usage", None)
    assert isinstance(usage, Usage)
    return usage


def beta(server: Server) -> dict[str, Any]:
    return {
        "model": f"deepseek/{MODEL}",
        "api_base": server.base_url + "/beta",
        "api_key": server.key,
    }


def test_chat(server: Server) -> None:
    reply = litellm.completion(
        **beta(server),
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=8,
        extra_body=PLAIN,
    )
    assert isinstance(reply, ModelResponse)
    message = reply.choices[0].message
    assert isinstance(message.content, str)
    assert message.content
    usage = usage_of(reply)
    assert 0 < usage.completion_tokens <= 8
    extra = usage.model_dump()
    assert (
        extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == usage.prompt_tokens
    )


def test_stream_with_usage(server: Server) -> None:
    chunks = list(
        litellm.completion(
            **beta(server),
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=PLAIN,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert 0 < usage_of(chunks[-1]).completion_tokens <= 8


def test_a_tool_call_then_a_thinking_answer(server: Server) -> None:
    """A forced call with thinking off; then, with thinking on, LiteLLM fills the call
    turn's ``reasoning_content`` with a single space, which deepwell takes."""
    call = litellm.completion(
        **beta(server),
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=40,
        temperature=0,
        extra_body=PLAIN,
    )
    assert isinstance(call, ModelResponse)
    choice = call.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    assert isinstance(calls[0], ChatCompletionMessageToolCall)
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": calls[0].id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": calls[0].function.arguments},
            }
        ],
    }
    result = {"role": "tool", "tool_call_id": calls[0].id, "content": "Sunny, 22 degrees."}
    answer = litellm.completion(
        **beta(server),
        messages=[*ASK, turn, result],
        tools=[WEATHER],
        max_tokens=24,
        thinking={"type": "enabled"},
    )
    assert isinstance(answer, ModelResponse)
    message = answer.choices[0].message
    assert isinstance(message.reasoning_content, str)


def test_text_completion_goes_to_chat_with_a_stray_suffix(server: Server) -> None:
    """``text_completion`` sends the prompt as a user message to the chat endpoint, with
    the suffix as a top-level field that deepwell ignores."""
    reply = litellm.text_completion(
        **beta(server),
        prompt="def fib(n):",
        suffix="    return fib(n - 1) + fib(n - 2)",
        max_tokens=8,
        extra_body=PLAIN,
    )
    assert isinstance(reply, TextCompletionResponse)
    assert isinstance(reply.choices[0].text, str)
    assert reply.choices[0].text
