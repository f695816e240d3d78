"""``POST /chat/completions`` over HTTP, on the fake engine."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from http_fakes import KEY, REPLY, FakeKeys

from deepwell.engine.fake import FakeEngine

PREFIXES = ["", "/v1", "/beta", "/v1/beta"]
PROMPT_HI = "<|user|>hi\n<|assistant|>"


def chat(**fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    fields.setdefault("thinking", {"type": "disabled"})
    return fields


def assert_envelope(
    response: httpx.Response, status: int, message: str, *, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] == message
    assert error["param"] == param
    return error


def sse_payloads(response: httpx.Response) -> list[Any]:
    """The ``data:`` payloads of an SSE body, ``[DONE]`` included as a string."""
    text = response.text
    assert text.endswith("\n\n")
    payloads: list[Any] = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


# -- success -------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_completion(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.post(f"{prefix}/chat/completions", json=chat())
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["object"] == "chat.completion"
    assert result["model"] == "deepseek-v4-flash"
    assert result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": REPLY},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert result["usage"]["prompt_tokens"] == len(PROMPT_HI)
    assert result["usage"]["completion_tokens"] == len(REPLY)
    assert result["usage"]["total_tokens"] == len(PROMPT_HI) + len(REPLY)
    assert result["system_fingerprint"].startswith("fp_")


async def test_completion_with_limits(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(max_tokens=5, stop="never"))
    result = response.json()
    assert result["choices"][0]["message"]["content"] == REPLY[:5]
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 5


async def test_completion_with_stop(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(stop=[" fake", "zzz"]))
    result = response.json()
    assert result["choices"][0]["message"]["content"] == "Hello from the"
    assert result["choices"][0]["finish_reason"] == "stop"


async def test_live_alias_answers_as_its_target(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(model="deepseek-chat"))
    assert response.status_code == 200
    assert response.json()["model"] == "deepseek-v4-flash"


async def test_body_without_content_type_is_json_all_the_same(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/chat/completions",
        content=json.dumps(chat()).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == REPLY


async def test_generation_is_finished_after_the_response(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    await client.post("/chat/completions", json=chat())
    await client.post("/chat/completions", json=chat(stream=True))
    assert engine.active == 0


# -- streaming -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_stream(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.post(f"{prefix}/chat/completions", json=chat(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.content.endswith(b"data: [DONE]\n\n")
    *chunks, done = sse_payloads(response)
    assert done == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert text == REPLY
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


async def test_stream_final_chunk_carries_usage(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(stream=True))
    *chunks, _ = sse_payloads(response)
    assert all("usage" not in c for c in chunks[:-1])
    used = chunks[-1]["usage"]
    assert used["prompt_tokens"] == len(PROMPT_HI)
    assert used["completion_tokens"] == len(REPLY)
    assert used["prompt_cache_hit_tokens"] + used["prompt_cache_miss_tokens"] == len(PROMPT_HI)


async def test_stream_with_include_usage(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chat/completions",
        json=chat(stream=True, stream_options={"include_usage": True}),
    )
    *chunks, _ = sse_payloads(response)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == len(REPLY)


async def test_stream_errors_before_the_stream_are_plain_responses(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/chat/completions", json=chat(stream=True, max_tokens=0))
    assert_envelope(
        response,
        400,
        "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]",
        param="max_tokens",
    )


# -- authentication ------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_missing_key_is_a_401(
    anonymous: httpx.AsyncClient, keys: FakeKeys, prefix: str
) -> None:
    response = await anonymous.post(f"{prefix}/chat/completions", json=chat())
    error = assert_envelope(
        response, 401, "Authentication Fails (auth header format should be Bearer sk-...)"
    )
    assert error["type"] == "authentication_error"
    assert keys.asked == []


@pytest.mark.parametrize(
    "header", ["Bearer sk-wrong0000000000000000000000WXYZ", "bearer sk-wrong00WXYZ"]
)
async def test_wrong_key_is_a_401(anonymous: httpx.AsyncClient, header: str) -> None:
    response = await anonymous.post(
        "/chat/completions", json=chat(), headers={"Authorization": header}
    )
    error = assert_envelope(
        response, 401, "Authentication Fails, Your api key: ****WXYZ is invalid"
    )
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_request_error"


@pytest.mark.parametrize("header", ["Basic abc", KEY, "Bearer", "Bearer   "])
async def test_malformed_authorization_is_a_401(
    anonymous: httpx.AsyncClient, keys: FakeKeys, header: str
) -> None:
    response = await anonymous.post(
        "/chat/completions", json=chat(), headers={"Authorization": header}
    )
    assert_envelope(
        response, 401, "Authentication Fails (auth header format should be Bearer sk-...)"
    )
    assert keys.asked == []


async def test_key_with_extra_spaces_is_accepted(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/chat/completions", json=chat(), headers={"Authorization": f"Bearer  {KEY} "}
    )
    assert response.status_code == 200


async def test_authentication_comes_before_the_body(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/chat/completions", content=b"{not json", headers={"Authorization": "Bearer sk-bad1"}
    )
    assert_envelope(response, 401, "Authentication Fails, Your api key: ****bad1 is invalid")


# -- request errors ------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_bad_json_is_a_400(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.post(
        f"{prefix}/chat/completions",
        content=b'{"model": "deepseek-v4-flash", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    error = assert_envelope(
        response,
        400,
        response.json()["error"]["message"],
    )
    assert error["message"].startswith("Failed to parse the request body as JSON: ")
    assert len(error["message"]) > len("Failed to parse the request body as JSON: ")
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request_error"


@pytest.mark.parametrize("content", [b"", b"   ", b"\n"])
async def test_empty_body_is_a_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/chat/completions", content=content)
    assert_envelope(response, 400, "Failed to parse the request body as JSON: the body is empty")


async def test_missing_messages_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json={"model": "deepseek-v4-flash"})
    error = assert_envelope(
        response,
        422,
        "Failed to deserialize the JSON body into the target type: messages: Field required",
        param="messages",
    )
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_parameters"


async def test_nested_field_error_names_the_path(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]
    response = await client.post("/chat/completions", json=chat(messages=messages))
    assert_envelope(
        response,
        422,
        "Failed to deserialize the JSON body into the target type: messages[1].role: "
        "Input should be 'system', 'user', 'assistant' or 'tool'",
        param="messages[1].role",
    )


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"temperature": 3}, "Input should be less than or equal to 2", "temperature"),
        ({"temperature": -1}, "Input should be greater than or equal to 0", "temperature"),
        (
            {"logprobs": True, "top_logprobs": 21},
            "Input should be less than or equal to 20",
            "top_logprobs",
        ),
        ({"top_p": 1.5}, "Input should be less than or equal to 1", "top_p"),
    ],
)
async def test_out_of_range_parameter_is_a_400(
    client: httpx.AsyncClient, fields: dict[str, Any], message: str, param: str
) -> None:
    response = await client.post("/chat/completions", json=chat(**fields))
    error = assert_envelope(response, 400, f"Invalid {param} value: {message}", param=param)
    assert error["code"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"top_logprobs": 2.5}, "top_logprobs"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
)
async def test_a_wrong_type_is_still_a_422(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await client.post("/chat/completions", json=chat(**fields))
    assert response.status_code == 422
    assert response.json()["error"]["param"] == param


async def test_empty_messages_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(messages=[]))
    error = assert_envelope(response, 422, response.json()["error"]["message"], param="messages")
    assert error["code"] == "invalid_parameters"


async def test_json_that_is_not_an_object_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=[1, 2])
    error = assert_envelope(response, 422, response.json()["error"]["message"], param=None)
    assert error["message"].startswith("Failed to deserialize the JSON body into the target type")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stop": 5}, "stop"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ],
)
async def test_union_field_error_names_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await client.post("/chat/completions", json=chat(**fields))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == param
    assert f"{param}.str" not in error["message"]


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_unknown_model_is_a_400(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.post(f"{prefix}/chat/completions", json=chat(model="gpt-4o"))
    error = assert_envelope(response, 400, "Model Not Exist")
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request_error"


async def test_retired_alias_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(model="deepseek-coder"))
    assert_envelope(
        response,
        400,
        "The model `deepseek-coder` was retired on 2000-01-01 00:00 UTC. "
        "Please use `deepseek-v4-flash` instead.",
        param="model",
    )


@pytest.mark.parametrize("max_tokens", [0, 8193])
async def test_max_tokens_out_of_range_is_a_400(client: httpx.AsyncClient, max_tokens: int) -> None:
    response = await client.post("/chat/completions", json=chat(max_tokens=max_tokens))
    assert_envelope(
        response,
        400,
        "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]",
        param="max_tokens",
    )


async def test_context_length_is_a_400(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "x" * 600}]
    response = await client.post("/chat/completions", json=chat(messages=messages))
    prompt = len(PROMPT_HI) - 2 + 600
    assert_envelope(
        response,
        400,
        f"This model's maximum context length is 512 tokens. However, you requested "
        f"{prompt + 1} tokens ({prompt} in the messages, 1 in the completion). Please reduce "
        "the length of the messages or completion.",
    )


async def test_too_many_stops_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat(stop=[str(i) for i in range(17)]))
    assert_envelope(
        response,
        400,
        "Invalid stop value, at most 16 stop sequences are allowed",
        param="stop",
    )


async def test_tool_message_without_tool_call_id_is_a_400(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]
    response = await client.post("/chat/completions", json=chat(messages=messages))
    assert_envelope(
        response,
        400,
        "messages[1]: a tool message needs `tool_call_id`",
        param="messages[1]",
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_a_405_in_the_envelope(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/chat/completions")
    error = assert_envelope(response, 405, "Method Not Allowed")
    assert error["type"] == "invalid_request_error"


async def test_405_names_the_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.get("/chat/completions")
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"
