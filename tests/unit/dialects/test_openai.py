"""The OpenAI dialect: wire → core conversion, and core events → completion / chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from pydantic import ValidationError

from deepwell.core.events import Event, Finished, ReasoningDelta, Started, TextDelta, Usage
from deepwell.dialects.common import usage
from deepwell.dialects.openai import ChatCompletionRequest, ChunkEncoder, collect, to_request
from deepwell.errors import EngineFailure, InvalidRequest
from deepwell.vocabulary import Message, Sampling, ToolCall

USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> ChatCompletionRequest:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("messages", [USER])
    return ChatCompletionRequest.model_validate(fields)


async def aiter_of(events: Iterable[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


STARTED = Started(
    id="cmpl-1",
    model="deepseek-v4-flash",
    created=1_750_000_000,
    thinking=False,
    fingerprint="fp_x",
)
THINKING = Started(
    id="cmpl-2", model="deepseek-v4-flash", created=1_750_000_001, thinking=True, fingerprint="fp_y"
)
USAGE = Usage(prompt_tokens=30, completion_tokens=4, cache_hit_tokens=12)


# -- to_request ----------------------------------------------------------------------


def test_minimal_request() -> None:
    converted = to_request(body())
    assert converted.model == "deepseek-v4-flash"
    assert converted.messages == (Message("user", "hi"),)
    assert converted.max_tokens is None
    assert converted.sampling == Sampling(temperature=1.0, top_p=1.0, seed=None)
    assert converted.stop == ()
    assert converted.thinking is None
    assert converted.user_id is None


def test_stop_string_becomes_one_stop() -> None:
    assert to_request(body(stop="\n\n")).stop == ("\n\n",)


def test_stop_list_is_kept_in_order() -> None:
    assert to_request(body(stop=["b", "a"])).stop == ("b", "a")
    assert to_request(body(stop=[])).stop == ()
    assert to_request(body(stop=None)).stop == ()


def test_content_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]
    converted = to_request(body(messages=[{"role": "user", "content": parts}]))
    assert converted.messages[0].content == "one two"


def test_non_text_content_part_is_rejected() -> None:
    with pytest.raises(ValidationError):
        body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}])


@pytest.mark.parametrize(("thinking", "expected"), [("enabled", True), ("disabled", False)])
def test_thinking(thinking: str, expected: bool) -> None:
    assert to_request(body(thinking={"type": thinking})).thinking is expected


def test_sampling_and_limits() -> None:
    converted = to_request(body(temperature=0, top_p=0.5, seed=3, max_tokens=9, user_id="u-1"))
    assert converted.sampling == Sampling(temperature=0.0, top_p=0.5, seed=3)
    assert converted.max_tokens == 9
    assert converted.user_id == "u-1"


def test_max_completion_tokens_is_used_when_max_tokens_is_absent() -> None:
    assert to_request(body(max_completion_tokens=11)).max_tokens == 11
    assert to_request(body(max_tokens=5, max_completion_tokens=11)).max_tokens == 5


def test_full_conversation() -> None:
    converted = to_request(
        body(
            messages=[
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "q", "name": "ann"},
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": 1}'},
                        }
                    ],
                },
                {"role": "tool", "content": "42", "tool_call_id": "call_1"},
                {"role": "assistant", "content": "The answer", "prefix": True},
            ]
        )
    )
    assert converted.messages == (
        Message("system", "sys"),
        Message("user", "q", name="ann"),
        Message(
            "assistant",
            None,
            reasoning_content="hmm",
            tool_calls=(ToolCall("call_1", "f", '{"x": 1}'),),
        ),
        Message("tool", "42", tool_call_id="call_1"),
        Message("assistant", "The answer", prefix=True),
    )


@pytest.mark.parametrize("tool_call_id", [None, ""])
def test_tool_message_without_tool_call_id_is_a_400(tool_call_id: str | None) -> None:
    tool: dict[str, Any] = {"role": "tool", "content": "42"}
    if tool_call_id is not None:
        tool["tool_call_id"] = tool_call_id
    with pytest.raises(InvalidRequest) as caught:
        to_request(body(messages=[USER, tool]))
    assert caught.value.status == 400
    assert caught.value.message == "messages[1]: a tool message needs `tool_call_id`"
    assert caught.value.param == "messages[1]"


@pytest.mark.parametrize("role", ["system", "user", "tool"])
def test_missing_content_is_a_400_except_for_assistant(role: str) -> None:
    message: dict[str, Any] = {"role": role, "tool_call_id": "c"}
    with pytest.raises(InvalidRequest) as caught:
        to_request(body(messages=[message]))
    assert caught.value.message == f"messages[0]: a {role} message needs `content`"
    assert caught.value.param == "messages[0]"


def test_assistant_without_content_is_fine() -> None:
    converted = to_request(body(messages=[USER, {"role": "assistant"}]))
    assert converted.messages[1] == Message("assistant", None)


def test_unknown_fields_are_ignored() -> None:
    assert body(n=1, tools=[], parallel_tool_calls=True).model == "deepseek-v4-flash"
    # LiteLLM's text completion puts a FIM suffix into the chat body.
    assert to_request(body(suffix="    return x")) == to_request(body())


@pytest.mark.parametrize("reasoning", ["", " "])
def test_empty_reasoning_content_is_kept_as_sent(reasoning: str) -> None:
    turn = {"role": "assistant", "content": "ok", "reasoning_content": reasoning}
    converted = to_request(body(messages=[USER, turn, USER]))
    assert converted.messages[1].reasoning_content == reasoning


def test_parallel_calls_and_effort_pass_through() -> None:
    converted = to_request(body(parallel_tool_calls=False, reasoning_effort="none"))
    assert converted.parallel_tool_calls is False
    assert converted.reasoning_effort == "none"
    assert to_request(body()).parallel_tool_calls is True


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": []},
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"top_p": 1.5},
        {"frequency_penalty": 3},
        {"top_logprobs": 21},
        {"user_id": "has space"},
        {"thinking": {"type": "maybe"}},
        {"response_format": {"type": "xml"}},
        {"messages": [{"role": "robot", "content": "x"}]},
    ],
)
def test_schema_rejects(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        body(**fields)


# -- collect -------------------------------------------------------------------------


async def test_collect_plain() -> None:
    events: list[Event] = [STARTED, TextDelta("Hel"), TextDelta("lo"), Finished("stop", USAGE)]
    assert await collect(aiter_of(events)) == {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1_750_000_000,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp_x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(USAGE),
    }


async def test_collect_empty_answer_with_length() -> None:
    result = await collect(aiter_of([STARTED, Finished("length", USAGE)]))
    assert result["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert result["choices"][0]["finish_reason"] == "length"


async def test_collect_thinking_has_reasoning_content() -> None:
    events: list[Event] = [
        THINKING,
        ReasoningDelta("let me "),
        ReasoningDelta("see"),
        TextDelta("4"),
        Finished("stop", USAGE),
    ]
    result = await collect(aiter_of(events))
    assert result["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4",
        "reasoning_content": "let me see",
    }
    assert result["id"] == "cmpl-2"


async def test_collect_without_thinking_drops_reasoning() -> None:
    events: list[Event] = [STARTED, ReasoningDelta("x"), TextDelta("y"), Finished("stop", USAGE)]
    message = (await collect(aiter_of(events)))["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "y"}


@pytest.mark.parametrize(
    "events",
    [[], [STARTED], [STARTED, TextDelta("x")], [Finished("stop", USAGE)]],
)
async def test_collect_without_a_result_is_an_engine_failure(events: list[Event]) -> None:
    with pytest.raises(EngineFailure) as caught:
        await collect(aiter_of(events))
    assert caught.value.status == 500


# -- ChunkEncoder --------------------------------------------------------------------


def encode_all(events: list[Event], *, include_usage: bool) -> list[dict[str, Any]]:
    encoder = ChunkEncoder(include_usage=include_usage)
    return [encoder.encode(event) for event in events]


PLAIN: list[Event] = [STARTED, TextDelta("Hel"), TextDelta("lo"), Finished("length", USAGE)]


@pytest.mark.parametrize("include_usage", [False, True])
def test_chunk_order_and_deltas(include_usage: bool) -> None:
    chunks = encode_all(PLAIN, include_usage=include_usage)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {"content": ""},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    for chunk in chunks:
        assert chunk["id"] == "cmpl-1"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["created"] == 1_750_000_000
        assert chunk["model"] == "deepseek-v4-flash"
        assert chunk["system_fingerprint"] == "fp_x"
        assert chunk["choices"][0]["index"] == 0
        assert chunk["choices"][0]["logprobs"] is None
        assert len(chunk["choices"]) == 1


def test_usage_key_absent_without_include_usage() -> None:
    chunks = encode_all(PLAIN, include_usage=False)
    assert ["usage" in c for c in chunks] == [False, False, False, True]
    assert chunks[-1]["usage"] == usage(USAGE)


def test_usage_null_on_every_other_chunk_with_include_usage() -> None:
    chunks = encode_all(PLAIN, include_usage=True)
    assert all("usage" in c for c in chunks)
    assert [c["usage"] for c in chunks[:-1]] == [None, None, None]
    assert chunks[-1]["usage"] == usage(USAGE)


def test_thinking_chunks() -> None:
    events: list[Event] = [
        THINKING,
        ReasoningDelta("r1"),
        TextDelta("t1"),
        Finished("stop", USAGE),
    ]
    chunks = encode_all(events, include_usage=False)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": None, "reasoning_content": ""},
        {"content": None, "reasoning_content": "r1"},
        {"content": "t1", "reasoning_content": None},
        {"content": "", "reasoning_content": None},
    ]
