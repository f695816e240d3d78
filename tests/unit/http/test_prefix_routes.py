"""Chat prefix completion over HTTP: on the ``/beta`` bases only, on the last message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from deepwell.engine.base import EngineRequest
from deepwell.engine.fake import FakeEngine

BETA = ["/beta", "/v1/beta"]
CODE = "x = 1\n```\nDone."
USER = {"role": "user", "content": "hi"}
PREFIX = {"role": "assistant", "content": "```python\n", "prefix": True}


class RecordingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__(CODE, context_length=512)
        self.prompts: list[str] = []

    def generate(self, request: EngineRequest) -> Any:
        self.prompts.append("".join(chr(t) for t in request.prompt))
        return super().generate(request)


@pytest.fixture
def engine() -> FakeEngine:
    return RecordingEngine()


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("thinking", {"type": "disabled"})
    fields["messages"] = list(messages)
    return fields


def assert_error(response: httpx.Response, message: str, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("base", BETA)
async def test_prefix_continues_the_reply(
    client: httpx.AsyncClient, engine: RecordingEngine, base: str
) -> None:
    response = await client.post(f"{base}/chat/completions", json=chat(USER, PREFIX, stop=["```"]))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"] == {"role": "assistant", "content": "x = 1\n"}
    assert engine.prompts[-1] == "<|user|>hi\n<|assistant|>```python\n"


async def test_prefix_streams(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/beta/chat/completions", json=chat(USER, PREFIX, stop=["```"], stream=True)
    )
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")


async def test_prefix_false_is_an_ordinary_assistant_turn(
    client: httpx.AsyncClient, engine: RecordingEngine
) -> None:
    closed = {**PREFIX, "prefix": False}
    response = await client.post("/chat/completions", json=chat(USER, closed))
    assert response.status_code == 200
    assert engine.prompts[-1].endswith("```python\n\n<|assistant|>")


@pytest.mark.parametrize("base", ["", "/v1"])
async def test_prefix_outside_beta_is_a_400_that_points_to_beta(
    client: httpx.AsyncClient, engine: RecordingEngine, base: str
) -> None:
    response = await client.post(f"{base}/chat/completions", json=chat(USER, PREFIX))
    assert_error(response, "use the base URL ending in /beta", "messages[1]")
    assert engine.prompts == []


async def test_prefix_on_an_earlier_message_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/chat/completions", json=chat(PREFIX, USER))
    assert_error(response, "only the last message", "messages[0]")


async def test_prefix_on_a_user_message_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/chat/completions", json=chat({**USER, "prefix": True}))
    assert_error(response, "an assistant message, may set `prefix`", "messages[0]")


async def test_prefix_with_tool_calls_is_a_400(client: httpx.AsyncClient) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    response = await client.post(
        "/beta/chat/completions", json=chat(USER, {**PREFIX, "tool_calls": [call]})
    )
    assert_error(response, "cannot carry tool_calls", "messages[1]")


async def test_prefix_of_the_wrong_type_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/beta/chat/completions", json=chat(USER, {**PREFIX, "prefix": [True]})
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "messages[1].prefix"
