"""``response_format`` ``json_schema`` through the official SDK's ``parse``, and number
bounds in strict tools, on the real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.e2e.conftest import PLAIN, Server

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"


class City(BaseModel):
    name: str
    country: str
    population_millions: float = Field(ge=0, le=40)
    continent: Literal["Europe", "Asia", "Africa", "America", "Oceania"]


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with server.client() as opened:
        yield opened


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_parse_returns_the_pydantic_model(client: openai.OpenAI, seed: int) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format=City,
        max_tokens=80,
        seed=seed,
        extra_body=PLAIN,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    city = choice.message.parsed
    assert isinstance(city, City)
    assert 0 <= city.population_millions <= 40


BOUNDED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "temperature": {"type": "number", "minimum": -30, "maximum": 45},
        "step": {"type": "integer", "multipleOf": 3, "minimum": 0, "maximum": 30},
    },
    "required": ["city", "days", "temperature", "step"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_strict_calls_keep_their_number_bounds(server: Server, seed: int) -> None:
    tool: Any = {
        "type": "function",
        "function": {"name": "forecast", "strict": True, "parameters": BOUNDED},
    }
    with server.client("/beta") as beta:
        response = beta.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Forecast Oslo for 30 days, 100 degrees."}],
            tools=[tool],
            tool_choice="required",
            max_tokens=120,
            seed=seed,
            extra_body=PLAIN,
        )
    calls = response.choices[0].message.tool_calls
    assert calls
    first = calls[0]
    assert first.type == "function"
    jsonschema.validate(json.loads(first.function.arguments), BOUNDED)
