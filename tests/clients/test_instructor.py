"""instructor against a real server, on the OpenAI SDK, in its TOOLS mode (the default:
a forced call, so thinking is off) and its JSON mode."""

from __future__ import annotations

import instructor
import pytest
from pydantic import BaseModel

from tests.clients.conftest import MODEL, PLAIN
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


class City(BaseModel):
    name: str
    country: str


@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON])
def test_extracts_a_model(server: Server, mode: instructor.Mode) -> None:
    client = instructor.from_openai(server.client(), mode=mode)
    city = client.chat.completions.create(
        model=MODEL,
        response_model=City,
        messages=[{"role": "user", "content": "Paris is the capital of France. Extract the city."}],
        max_tokens=40,
        temperature=0,
        max_retries=0,
        extra_body=PLAIN,
    )
    assert isinstance(city, City)
    assert city.name
    assert city.country
