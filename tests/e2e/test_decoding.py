"""Thinking mode, JSON output, tool calls and logprobs on the real model, through ``openai``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, Literal, cast

import httpx
import jsonschema
import openai
import pytest
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolMessageParam,
)

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
OFF: dict[str, Any] = {"thinking": {"type": "disabled"}}
CALL_ID = re.compile(r"^call_\d{2}_[A-Za-z0-9]{24}$")

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": WEATHER_SCHEMA,
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}
ASK_WEATHER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather like in Paris today?"}
]


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with server.client() as opened:
        yield opened


@pytest.fixture
def beta(server: Server) -> Iterator[openai.OpenAI]:
    with server.client("/beta") as opened:
        yield opened


def usage_of(response: Any) -> tuple[int, int]:
    """(completion tokens, reasoning tokens) of a response or final chunk."""
    usage = response.usage
    assert usage is not None
    details = usage.completion_tokens_details
    return usage.completion_tokens, details.reasoning_tokens if details else 0


def reasoning_of(message: Any) -> str | None:
    value = getattr(message, "reasoning_content", None)
    return value if value is None else str(value)


# -- thinking ------------------------------------------------------------------------


def test_thinking_on_by_default_gives_reasoning_and_a_separate_answer(
    client: openai.OpenAI,
) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is 12 + 30? Answer briefly."}],
        max_tokens=120,
    )
    message = response.choices[0].message
    reasoning = reasoning_of(message)
    completion, reasoning_tokens = usage_of(response)
    assert reasoning
    assert message.content
    assert "<think>" not in message.content
    assert "</think>" not in message.content
    assert 0 < reasoning_tokens < completion <= 120
    # The default effort's budget (64 tokens for the embedded model) caps the reasoning.
    assert reasoning_tokens <= 64


def test_thinking_off_gives_no_reasoning(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        extra_body=OFF,
    )
    message = response.choices[0].message
    assert message.content
    assert reasoning_of(message) is None
    assert "reasoning_content" not in (message.model_extra or {})
    assert usage_of(response)[1] == 0


def test_a_tiny_budget_is_respected(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=40,
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 3}},
    )
    completion, reasoning_tokens = usage_of(response)
    assert 0 < reasoning_tokens <= 3
    assert completion > reasoning_tokens
    assert response.choices[0].message.content


def test_an_unknown_effort_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        # "extreme" is no effort the SDK knows: mypy names the call, not the argument.
        client.chat.completions.create(  # type: ignore[call-overload]
            model=MODEL,
            messages=ASK_WEATHER,
            max_tokens=4,
            reasoning_effort="extreme",
        )
    assert "reasoning_effort" in caught.value.message


def test_thinking_stream_order(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is 2 + 2?"}],
            max_tokens=40,
            stream=True,
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.content is None
    assert (first.model_extra or {}).get("reasoning_content") == ""
    phases = []
    for chunk in chunks[1:-1]:
        delta = chunk.choices[0].delta
        if (delta.model_extra or {}).get("reasoning_content"):
            phases.append("reasoning")
        elif delta.content:
            phases.append("content")
    assert phases[0] == "reasoning"
    assert "content" in phases
    assert phases == sorted(phases, key=["reasoning", "content"].index)
    last = chunks[-1]
    assert last.choices[0].finish_reason in {"stop", "length"}
    assert usage_of(last)[1] > 0


# -- JSON output ---------------------------------------------------------------------

JSON_PROMPTS = [
    "Describe a cat with its name and age as JSON.",
    "Give the capital of France and its population in JSON.",
    'Return JSON with a key "colors" listing three colors.',
]


@pytest.mark.parametrize("prompt", JSON_PROMPTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_json_output_parses(client: openai.OpenAI, prompt: str, seed: int) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
        max_tokens=120,
        seed=seed,
        extra_body=OFF,
    )
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content or ""), dict)


def test_json_output_in_thinking_mode(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": JSON_PROMPTS[0]}],
        response_format={"type": "json_object"},
        max_tokens=160,
    )
    assert reasoning_of(response.choices[0].message)
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content or ""), dict)


# -- tool calls ----------------------------------------------------------------------


def the_call(response: Any, name: str) -> dict[str, Any]:
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls
    for index, call in enumerate(calls):
        assert CALL_ID.match(call.id)
        assert call.id.startswith(f"call_{index:02d}_")
        assert call.type == "function"
        assert (call.model_extra or {}).get("index") == index
    assert calls[0].function.name == name
    arguments: dict[str, Any] = json.loads(calls[0].function.arguments)
    return arguments


@pytest.mark.parametrize("seed", [1, 2])
def test_required_tool_choice_gives_a_valid_call(client: openai.OpenAI, seed: int) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=120,
        seed=seed,
        extra_body=OFF,
    )
    jsonschema.validate(the_call(response, "get_weather"), WEATHER_SCHEMA)
    assert not response.choices[0].message.content


def test_a_named_function_is_the_one_called(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=120,
        extra_body=OFF,
    )
    jsonschema.validate(the_call(response, "get_time"), TIME["function"]["parameters"])


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_forced_calls_in_thinking_mode_are_a_400(client: openai.OpenAI, choice: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice=choice, max_tokens=8
        )
    assert caught.value.status_code == 400
    assert "Thinking mode does not support this tool_choice" in caught.value.message


def test_a_tool_round_trip_ends_in_an_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=120,
        extra_body=OFF,
    )
    calls = first.choices[0].message.tool_calls
    assert calls
    call = calls[0]
    # The call as it came back, less deepwell's ``index``: the shape of a call param.
    sent = cast(ChatCompletionMessageFunctionToolCallParam, call.model_dump(exclude={"index"}))
    messages: list[ChatCompletionMessageParam] = [
        *ASK_WEATHER,
        {"role": "assistant", "content": "", "tool_calls": [sent]},
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": '{"temperature_c": 21, "sky": "sunny"}',
        },
    ]
    # The small model may well call again with `auto`; `none` asks for the answer.
    final = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER],
        tool_choice="none",
        max_tokens=120,
        extra_body=OFF,
    )
    assert final.choices[0].finish_reason in {"stop", "length"}
    assert not final.choices[0].message.tool_calls
    assert final.choices[0].message.content
    assert "<tool_call>" not in final.choices[0].message.content


def test_thinking_mode_needs_the_reasoning_of_tool_call_turns_back(client: openai.OpenAI) -> None:
    turn: ChatCompletionAssistantMessageParam = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_00_abcdefghijklmnopqrstuvwx",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    result: ChatCompletionToolMessageParam = {
        "role": "tool",
        "tool_call_id": "call_00_abcdefghijklmnopqrstuvwx",
        "content": "21C",
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[*ASK_WEATHER, turn, result], tools=[WEATHER], max_tokens=8
        )
    assert caught.value.message.endswith(
        "The `reasoning_content` in the thinking mode must be passed back to the API."
    )
    passed_back: ChatCompletionAssistantMessageParam = {
        **turn,
        "reasoning_content": "I need the weather tool.",  # type: ignore[typeddict-unknown-key]
    }
    response = client.chat.completions.create(
        model=MODEL, messages=[*ASK_WEATHER, passed_back, result], tools=[WEATHER], max_tokens=24
    )
    assert reasoning_of(response.choices[0].message) is not None


def test_streamed_calls_carry_index_id_and_name(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ASK_WEATHER,
            tools=[WEATHER],
            tool_choice="required",
            max_tokens=120,
            temperature=0,
            stream=True,
            extra_body=OFF,
        )
    )
    calls = [c for chunk in chunks for c in chunk.choices[0].delta.tool_calls or ()]
    assert calls
    assert calls[0].index == 0
    assert calls[0].id
    assert CALL_ID.match(calls[0].id)
    assert calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    first = [c for c in calls if c.index == 0 and c.function is not None]
    # The arguments stream in pieces; only the first piece names the call.
    assert len(first) > 1
    assert all(c.id is None and c.function.name is None for c in first[1:] if c.function)
    arguments = "".join(c.function.arguments or "" for c in first if c.function is not None)
    jsonschema.validate(json.loads(arguments), WEATHER_SCHEMA)
    assert not "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("max_tokens", [5, 12])
def test_a_call_cut_by_max_tokens_leaks_no_markup(
    client: openai.OpenAI, stream: bool, max_tokens: int
) -> None:
    """Cut inside the call's name (5 tokens) or its arguments (12): no part of the call
    becomes answer text."""
    asked: Any = dict(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=max_tokens,
        temperature=0,
        extra_body=OFF,
    )
    if stream:
        chunks = list(client.chat.completions.create(**asked, stream=True))
        content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        finish = chunks[-1].choices[0].finish_reason
    else:
        reply = client.chat.completions.create(**asked)
        content, finish = reply.choices[0].message.content or "", reply.choices[0].finish_reason
    assert content == ""
    assert finish == "length"


def test_129_tools_is_a_400(client: openai.OpenAI) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": f"tool_{i}", "parameters": {"type": "object"}}}
        for i in range(129)
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=tools, max_tokens=4)
    assert "at most 128 functions" in caught.value.message


@pytest.mark.parametrize("name", ["has space", "x" * 65])
def test_a_bad_function_name_is_a_400(client: openai.OpenAI, name: str) -> None:
    tools: Any = [{"type": "function", "function": {"name": name}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=tools, max_tokens=4)
    assert "^[a-zA-Z0-9_-]{1,64}$" in caught.value.message


def test_a_tool_that_is_not_a_function_is_refused(server: Server) -> None:
    body = {
        "model": MODEL,
        "messages": ASK_WEATHER,
        "tools": [{"type": "retrieval", "function": {"name": "f"}}],
    }
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )
    assert response.status_code == 422
    assert "tools" in response.json()["error"]["message"]


# -- strict mode ---------------------------------------------------------------------

STRICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}


def strict_tool(parameters: dict[str, Any]) -> Any:
    return {
        "type": "function",
        "function": {"name": "get_weather", "strict": True, "parameters": parameters},
    }


def test_strict_mode_refuses_an_unsupported_schema(beta: openai.OpenAI) -> None:
    schema = {
        **STRICT_SCHEMA,
        "properties": {**STRICT_SCHEMA["properties"], "city": {"type": "string", "minLength": 2}},
    }
    with pytest.raises(openai.BadRequestError) as caught:
        beta.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tools=[strict_tool(schema)], max_tokens=4
        )
    assert caught.value.status_code == 400
    assert "`minLength`" in caught.value.message


@pytest.mark.parametrize("choice", ["required", "auto"])
def test_strict_mode_constrains_the_arguments(
    beta: openai.OpenAI, choice: Literal["required", "auto"]
) -> None:
    response = beta.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris for the next 3 days, in celsius?"}],
        tools=[strict_tool(STRICT_SCHEMA)],
        tool_choice=choice,
        max_tokens=120,
        seed=1,
        extra_body=OFF,
    )
    calls = response.choices[0].message.tool_calls
    if choice == "auto" and not calls:
        pytest.skip("the model answered without calling the tool")
    jsonschema.validate(the_call(response, "get_weather"), STRICT_SCHEMA)


# -- logprobs ------------------------------------------------------------------------


def test_top_logprobs_are_consistent_at_temperature_zero(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        extra_body=OFF,
    )
    logprobs = response.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content
    assert "".join(t.token for t in logprobs.content) == response.choices[0].message.content
    for token in logprobs.content:
        assert len(token.top_logprobs) == 3
        assert token.logprob <= 0
        assert bytes(token.bytes or []).decode("utf-8", errors="replace") == token.token
        tops = [top.logprob for top in token.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert sum(math.exp(t) for t in tops) <= 1 + 1e-6
        # Greedy decoding took the likeliest token.
        assert token.logprob >= tops[0] - 1e-4
        assert token.token == token.top_logprobs[0].token


def test_logprobs_of_reasoning_and_in_streams(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=12,
            logprobs=True,
            top_logprobs=2,
            stream=True,
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 4}},
        )
    )
    reasoning = [
        item
        for chunk in chunks
        if chunk.choices[0].logprobs is not None
        for item in (chunk.choices[0].logprobs.model_extra or {}).get("reasoning_content") or ()
    ]
    content = [
        item
        for chunk in chunks
        if chunk.choices[0].logprobs is not None
        for item in chunk.choices[0].logprobs.content or ()
    ]
    assert 0 < len(reasoning) <= 4
    assert all(len(item["top_logprobs"]) == 2 for item in reasoning)
    assert content
    assert all(len(item.top_logprobs) == 2 for item in content)
