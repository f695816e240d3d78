"""LangChain against a real server: ``langchain-deepseek``'s ChatDeepSeek and
``langchain-openai``'s ChatOpenAI, configured as their users do."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_deepseek import ChatDeepSeek
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from tests.clients.conftest import MODEL, PLAIN
from tests.clients.recording import Sent
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


@tool
def get_weather(city: str) -> str:
    """Get the current weather of a city."""
    return f"It is sunny in {city}."


class City(BaseModel):
    """A city and the country it is in."""

    name: str
    country: str


def deepseek(server: Server, sent: Sent, **fields: Any) -> ChatDeepSeek:
    return ChatDeepSeek(
        model=MODEL,
        api_key=SecretStr(server.key),
        base_url=server.base_url + "/v1",
        http_client=sent.client(),
        max_retries=0,
        **fields,
    )


def test_invoke_thinks_by_default(server: Server, sent: Sent) -> None:
    reply = deepseek(server, sent, max_tokens=24).invoke("Say hi.")
    assert isinstance(reply.content, str)
    assert reply.content
    reasoning = reply.additional_kwargs["reasoning_content"]
    assert isinstance(reasoning, str)
    assert reasoning
    usage = reply.usage_metadata
    assert usage is not None
    assert 0 < usage["output_tokens"] <= 24
    assert usage.get("output_token_details", {}).get("reasoning", 0) > 0


def test_stream_has_usage_without_asking(server: Server, sent: Sent) -> None:
    """ChatDeepSeek sends no ``stream_options`` and still reads usage off the last chunk."""
    chunks = list(deepseek(server, sent, max_tokens=24).stream("Say hi."))
    assert "stream_options" not in sent.bodies[0]
    assert sent.bodies[0]["stream"] is True
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole.content, str)
    assert whole.content
    assert whole.additional_kwargs.get("reasoning_content")
    assert whole.usage_metadata is not None
    assert 0 < whole.usage_metadata["output_tokens"] <= 24


def test_a_tool_loop_with_thinking_disabled(server: Server, sent: Sent) -> None:
    """A forced call, the tool's result, then an answer with ``tool_choice: none``: the
    tools stay in the prompt, so the second request starts from the first one's cache."""
    llm = deepseek(server, sent, max_tokens=48, temperature=0, extra_body=PLAIN)
    messages: list[BaseMessage] = [HumanMessage("What is the weather in Paris?")]
    call = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(messages)
    assert isinstance(call, AIMessage)
    assert [c["name"] for c in call.tool_calls] == ["get_weather"]
    assert isinstance(call.tool_calls[0]["args"]["city"], str)
    call_id = call.tool_calls[0]["id"]
    assert call_id
    messages += [
        call,
        ToolMessage(get_weather.invoke(call.tool_calls[0]["args"]), tool_call_id=call_id),
    ]
    answer = llm.bind_tools([get_weather], tool_choice="none").invoke(messages)
    assert isinstance(answer, AIMessage)
    assert answer.tool_calls == []
    assert isinstance(answer.content, str)
    assert answer.content
    assert sent.bodies[1]["tool_choice"] == "none"
    assert sent.bodies[1]["messages"][1]["tool_calls"][0]["id"] == call_id
    usage = answer.usage_metadata
    assert usage is not None
    assert usage.get("input_token_details", {}).get("cache_read", 0) >= 64


def test_with_structured_output(server: Server, sent: Sent) -> None:
    """Function calling, LangChain's default: a named tool and ``parallel_tool_calls: false``."""
    llm = deepseek(server, sent, max_tokens=48, temperature=0, extra_body=PLAIN)
    city = llm.with_structured_output(City).invoke("Paris is the capital of France.")
    assert isinstance(city, City)
    assert city.name
    assert sent.bodies[0]["tool_choice"]["function"]["name"] == "City"
    assert sent.bodies[0]["parallel_tool_calls"] is False


def test_chat_openai_max_completion_tokens_is_honoured(server: Server, sent: Sent) -> None:
    llm = ChatOpenAI(
        model=MODEL,
        api_key=SecretStr(server.key),
        base_url=server.base_url,
        http_client=sent.client(),
        max_retries=0,
        max_completion_tokens=5,
        temperature=0,
        extra_body=PLAIN,
    )
    # Greedy: sampled, the model sometimes answers in three tokens and stops.
    reply = llm.invoke("Count from one to twenty in words.")
    assert sent.bodies[0]["max_completion_tokens"] == 5
    assert "max_tokens" not in sent.bodies[0]
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == 5
    assert reply.response_metadata["finish_reason"] == "length"
