"""OpenAI-format chat against a real server, through the official ``openai`` SDK."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import PLAIN, TEST_CONTEXT, Server

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello in five words."}]


def test_non_stream_answer_has_deepseek_shape(server: Server) -> None:
    response = server.client().chat.completions.create(
        extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=16
    )

    assert uuid.UUID(response.id)
    assert response.object == "chat.completion"
    assert response.model == MODEL
    assert response.system_fingerprint
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    usage = response.usage
    assert usage is not None
    extra = usage.model_extra or {}
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == (
        usage.prompt_tokens
    )
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == extra["prompt_cache_hit_tokens"]


def test_v1_and_beta_bases_serve_chat(server: Server) -> None:
    for path in ("/v1", "/beta"):
        response = server.client(path).chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=2
        )
        assert response.choices[0].message.content


def test_stream_chunks_in_order_with_usage_last(server: Server) -> None:
    chunks = list(
        server.client().chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=8, stream=True
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    *middle, last = chunks[1:]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in middle)
    assert last.choices[0].finish_reason in {"stop", "length"}
    assert last.usage is not None
    assert last.usage.completion_tokens == len(middle) or last.usage.completion_tokens >= 1
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_raw_bytes_end_with_done(server: Server) -> None:
    # Greedy, so that the answer cannot end (sampled) before its fourth token.
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 4, "temperature": 0, "stream": True}
    body |= PLAIN
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes())

    events = [line for line in raw.split(b"\n\n") if line]
    assert events[-1] == b"data: [DONE]"
    final = json.loads(events[-2].removeprefix(b"data: "))
    assert final["choices"][0]["finish_reason"] == "length"
    assert final["usage"]["completion_tokens"] == 4


def test_max_tokens_one_is_length(server: Server) -> None:
    response = server.client().chat.completions.create(
        extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=1, temperature=0
    )

    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None
    assert response.usage.completion_tokens == 1


def test_stop_sequence_ends_the_answer(server: Server) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "List the numbers from 1 to 9, separated by commas."}
    ]
    response = server.client().chat.completions.create(
        extra_body=PLAIN, model=MODEL, messages=messages, max_tokens=40, temperature=0, stop=["5"]
    )

    content = response.choices[0].message.content or ""
    assert response.choices[0].finish_reason == "stop"
    assert "4" in content
    assert "5" not in content
    assert "6" not in content


def test_temperature_zero_is_deterministic(server: Server) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name three rivers."}]
    answers = {
        server.client()
        .chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=messages, max_tokens=12, temperature=0
        )
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(answers) == 1


def test_models_lists_current_ids(server: Server) -> None:
    ids = {model.id for model in server.client().models.list()}
    assert {"deepseek-v4-flash", "deepseek-v4-pro"} <= ids


def test_unknown_key_is_401(server: Server) -> None:
    client = openai.OpenAI(api_key="sk-wrongkey0000", base_url=server.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=1)
    assert caught.value.status_code == 401
    assert "****0000 is invalid" in caught.value.message


def test_missing_key_is_401(server: Server) -> None:
    response = httpx.post(f"{server.base_url}/chat/completions", json={}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_unknown_model_is_400(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            extra_body=PLAIN, model="gpt-4o", messages=HELLO, max_tokens=1
        )
    assert caught.value.status_code == 400
    assert "Model Not Exist" in caught.value.message


def test_oversize_prompt_is_400(server: Server) -> None:
    long = "word " * (TEST_CONTEXT + 100)
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            extra_body=PLAIN,
            model=MODEL,
            messages=[{"role": "user", "content": long}],
            max_tokens=10,
        )
    message = caught.value.message
    assert f"maximum context length is {TEST_CONTEXT} tokens" in message
    assert "10 in the completion" in message


def test_max_tokens_out_of_range_is_400(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=0
        )
    assert "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]" in (
        caught.value.message
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "Failed to parse the request body as JSON"),
        (b'{"model": "deepseek-v4-flash"}', 422, "messages"),
        (b'{"model": "deepseek-v4-flash", "messages": "hi"}', 422, "messages"),
        (b'{"model": 5, "messages": []}', 422, "model"),
        (b"", 400, "empty"),
    ],
)
def test_malformed_bodies_get_the_envelope(
    server: Server, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]


def test_disconnect_mid_stream_frees_the_sequence(server: Server) -> None:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 400, "temperature": 0, "stream": True}
    body |= PLAIN
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: ") for line in received)

    assert server.busy_after_settling() == 0

    after = server.client().chat.completions.create(
        extra_body=PLAIN, model=MODEL, messages=HELLO, max_tokens=3, temperature=0
    )
    assert after.choices[0].message.content
