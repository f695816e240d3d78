"""``response_format`` ``json_schema`` and hostile schemas over HTTP, on the fake engine."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from http_fakes import KEY, FakeKeys, FakeWallet

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings, StructuredOutput

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def body(response_format: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "model": "deepseek-v4-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "disabled"},
        "response_format": response_format,
        **fields,
    }


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


async def test_a_json_schema_response_format_is_served(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=body(json_schema(SCHEMA)))
    assert response.status_code == 200, response.text


async def test_a_json_schema_without_its_schema_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=body({"type": "json_schema"}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "string", "pattern": ")"}, "regex"),
        ({"enum": []}, "Unsatisfiable"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "allows no output"),
        ({"properties": {f"p{i}": {"type": "string"} for i in range(20000)}}, "too large"),
    ],
)
async def test_a_schema_that_cannot_be_enforced_is_a_400_that_says_why(
    client: httpx.AsyncClient, schema: dict[str, Any], reason: str
) -> None:
    response = await client.post("/chat/completions", json=body(json_schema(schema)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("Invalid response_format: ")
    assert reason in error["message"]


async def test_a_strict_tool_whose_schema_cannot_be_enforced_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "string", "pattern": "["}},
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    }
    response = await client.post(
        "/beta/chat/completions", json=body({"type": "text"}, tools=[tool])
    )
    assert response.status_code == 400
    assert "cannot be enforced in strict mode" in response.json()["error"]["message"]


async def test_the_hosted_apis_refusal_is_a_setting(
    settings: Settings, engine: FakeEngine, keys: FakeKeys, wallet: FakeWallet
) -> None:
    settings.structured_output = StructuredOutput(json_schema=False)
    app = create_app(
        settings, engines={DEFAULT_MODEL: engine}, keys=keys, wallet=wallet, balances=wallet
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as client,
    ):
        client.headers["Authorization"] = f"Bearer {KEY}"
        response = await client.post("/chat/completions", json=body(json_schema(SCHEMA)))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "This response_format type is unavailable now"
