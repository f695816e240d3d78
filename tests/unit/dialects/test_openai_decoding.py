"""The OpenAI dialect for tools, JSON output, thinking budgets and logprobs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from deepwell.core.events import (
    Event,
    Finished,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from deepwell.dialects.openai import ChatCompletionRequest, ChunkEncoder, collect, to_request
from deepwell.errors import InvalidRequest
from deepwell.vocabulary import TokenLogprob, Tool, ToolChoice, TopLogprob

FUNCTION = {
    "name": "get_weather",
    "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
STARTED = Started(id="c", model="deepseek-v4-flash", created=1, thinking=False, fingerprint="fp")
THINKING = replace(STARTED, thinking=True)
USAGE = Usage(prompt_tokens=10, completion_tokens=5, reasoning_tokens=2)
CALL = ToolCallDelta(0, "call_00_abcdefghijklmnopqrstuvwx", "get_weather", '{"city": "Paris"}')
LP = TokenLogprob(
    "Hi", -0.1, (72, 105), (TopLogprob("Hi", -0.1, (72, 105)), TopLogprob("Yo", -2.5, (89, 111)))
)
LP_ITEM = {
    "token": "Hi",
    "logprob": -0.1,
    "bytes": [72, 105],
    "top_logprobs": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
        {"token": "Yo", "logprob": -2.5, "bytes": [89, 111]},
    ],
}


def body(**fields: Any) -> ChatCompletionRequest:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return ChatCompletionRequest.model_validate(fields)


async def aiter_of(events: Iterable[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


# -- wire → core ---------------------------------------------------------------------


def test_tools_and_tool_choice() -> None:
    converted = to_request(
        body(
            tools=[{"type": "function", "function": {**FUNCTION, "strict": True}}],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    )
    assert converted.tools == (
        Tool("get_weather", "Weather", FUNCTION["parameters"], strict=True),  # type: ignore[arg-type]
    )
    assert converted.tool_choice == ToolChoice("function", "get_weather")


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
def test_tool_choice_modes(choice: str) -> None:
    assert to_request(body(tool_choice=choice)).tool_choice == ToolChoice(choice)  # type: ignore[arg-type]
    assert to_request(body()).tool_choice is None


def test_a_function_needs_only_a_name() -> None:
    (tool,) = to_request(body(tools=[{"type": "function", "function": {"name": "f"}}])).tools
    assert tool == Tool("f")


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": [{"type": "retrieval", "function": FUNCTION}]},
        {"tools": [{"function": FUNCTION}]},
        {"tool_choice": "sometimes"},
        {"tool_choice": {"type": "function"}},
        {"top_logprobs": 21},
        {"thinking": {"type": "enabled", "budget_tokens": -1}},
    ],
)
def test_bad_shapes_are_validation_errors(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        body(**fields)


def test_response_format_effort_and_budget() -> None:
    converted = to_request(
        body(
            response_format={"type": "json_object"},
            reasoning_effort="max",
            thinking={"type": "enabled", "budget_tokens": 16},
        )
    )
    assert converted.json_output
    assert converted.reasoning_effort == "max"
    assert converted.thinking_budget == 16
    assert not to_request(body(response_format={"type": "text"})).json_output


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({}, None), ({"logprobs": True}, 0), ({"logprobs": True, "top_logprobs": 3}, 3)],
)
def test_logprobs(fields: dict[str, Any], expected: int | None) -> None:
    assert to_request(body(**fields)).logprobs == expected


def test_top_logprobs_without_logprobs_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="top_logprobs requires logprobs") as caught:
        to_request(body(top_logprobs=2))
    assert caught.value.param == "top_logprobs"


# -- core → wire ---------------------------------------------------------------------


async def test_collect_tool_calls() -> None:
    result = await collect(
        aiter_of([THINKING, ReasoningDelta("r"), CALL, Finished("tool_calls", USAGE)])
    )
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "r",
        "tool_calls": [
            {
                "index": 0,
                "id": CALL.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }


async def test_collect_logprobs_for_content_and_reasoning() -> None:
    events: list[Event] = [
        replace(THINKING, logprobs=True),
        ReasoningDelta("Hi", (LP,)),
        TextDelta("Hi", (LP, LP)),
        Finished("stop", USAGE),
    ]
    logprobs = (await collect(aiter_of(events)))["choices"][0]["logprobs"]
    assert logprobs == {"content": [LP_ITEM, LP_ITEM], "reasoning_content": [LP_ITEM]}


async def test_collect_logprobs_without_thinking_and_when_not_asked() -> None:
    events: list[Event] = [
        replace(STARTED, logprobs=True),
        TextDelta("Hi", (LP,)),
        Finished("stop", USAGE),
    ]
    assert (await collect(aiter_of(events)))["choices"][0]["logprobs"] == {"content": [LP_ITEM]}
    events[0] = STARTED
    assert (await collect(aiter_of(events)))["choices"][0]["logprobs"] is None


def test_chunks_in_thinking_mode_with_a_tool_call() -> None:
    encoder = ChunkEncoder(include_usage=False)
    events: list[Event] = [
        THINKING,
        ReasoningDelta("r"),
        TextDelta("t"),
        CALL,
        Finished("tool_calls", USAGE),
    ]
    chunks = [encoder.encode(e) for e in events]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[2] == {"content": "t", "reasoning_content": None}
    assert deltas[3] == {
        "content": None,
        "reasoning_content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": CALL.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["choices"][0]["logprobs"] is None for c in chunks)


def test_chunk_tool_call_without_thinking() -> None:
    encoder = ChunkEncoder(include_usage=False)
    encoder.encode(STARTED)
    delta = encoder.encode(CALL)["choices"][0]["delta"]
    assert delta["content"] is None
    assert "reasoning_content" not in delta
    assert delta["tool_calls"][0]["index"] == 0


def test_chunk_logprobs() -> None:
    encoder = ChunkEncoder(include_usage=False)
    encoder.encode(replace(THINKING, logprobs=True))
    assert encoder.encode(ReasoningDelta("Hi", (LP,)))["choices"][0]["logprobs"] == {
        "reasoning_content": [LP_ITEM]
    }
    assert encoder.encode(TextDelta("Hi", (LP,)))["choices"][0]["logprobs"] == {
        "content": [LP_ITEM]
    }


FIRST_PIECE = ToolCallDelta(0, CALL.id, "get_weather", '{"city": ')
NEXT_PIECE = ToolCallDelta(0, None, None, '"Paris"}')


async def test_collect_joins_the_pieces_of_a_call() -> None:
    events: list[Event] = [STARTED, FIRST_PIECE, NEXT_PIECE, Finished("tool_calls", USAGE)]
    result = await collect(aiter_of(events))
    (call,) = result["choices"][0]["message"]["tool_calls"]
    assert call["id"] == CALL.id
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_chunks_carry_the_id_and_name_on_the_first_piece_only() -> None:
    encoder = ChunkEncoder(include_usage=False)
    encoder.encode(STARTED)
    first = encoder.encode(FIRST_PIECE)["choices"][0]["delta"]["tool_calls"][0]
    later = encoder.encode(NEXT_PIECE)["choices"][0]["delta"]["tool_calls"][0]
    assert first == {
        "index": 0,
        "id": CALL.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": '},
    }
    assert later == {"index": 0, "function": {"arguments": '"Paris"}'}}
