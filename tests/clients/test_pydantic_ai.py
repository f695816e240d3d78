"""pydantic-ai against a real server: an agent with a tool, on the DeepSeek provider
given an OpenAI client pointed at deepwell."""

from __future__ import annotations

import openai
import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.deepseek import DeepSeekProvider
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import UsageLimits

from tests.clients.conftest import MODEL
from tests.clients.recording import Sent
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


async def first_step_only(ctx: RunContext[object], tool: ToolDefinition) -> ToolDefinition | None:
    """The tool is offered until it has been called, so a small model cannot call it for
    ever."""
    return tool if ctx.run_step <= 1 else None


async def test_an_agent_calls_its_tool(server: Server, sent: Sent) -> None:
    """``thinking=False`` is sent as ``reasoning_effort: "none"``, which turns thinking off."""
    async with sent.async_client() as http:
        client = openai.AsyncOpenAI(
            api_key=server.key, base_url=server.base_url, http_client=http, max_retries=0
        )
        model = OpenAIChatModel(MODEL, provider=DeepSeekProvider(openai_client=client))
        settings = ModelSettings(
            thinking=False, max_tokens=40, temperature=0, parallel_tool_calls=False
        )
        agent = Agent(model, model_settings=settings)
        asked: list[str] = []

        @agent.tool_plain(prepare=first_step_only)
        def get_weather(city: str) -> str:
            """Get the current weather of a city."""
            asked.append(city)
            return f"It is sunny in {city}."

        result = await agent.run(
            "What is the weather in Paris? Use the tool.",
            usage_limits=UsageLimits(request_limit=4),
        )
    assert asked
    assert isinstance(result.output, str)
    assert sent.bodies[0]["reasoning_effort"] == "none"
    assert sent.bodies[0]["tools"][0]["function"]["name"] == "get_weather"
    usage = result.usage
    assert usage.requests == 2
    assert "prompt_cache_hit_tokens" in usage.details
