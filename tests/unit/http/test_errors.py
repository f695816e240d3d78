"""The error types of deepwell and their rendering into the DeepSeek envelope."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from http_fakes import KEY

from deepwell.engine.base import EngineEvent, EngineRequest, Piece
from deepwell.engine.fake import FakeEngine
from deepwell.errors import (
    AuthenticationFailed,
    DeepwellError,
    EngineFailure,
    InsufficientBalance,
    InvalidParameters,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    RateLimited,
)
from deepwell.http.errors import render, validation_error

# -- the error types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    [
        (DeepwellError("m"), 500, "api_error", "internal_error"),
        (InvalidRequest("m"), 400, "invalid_request_error", "invalid_request_error"),
        (InvalidParameters("m"), 422, "invalid_request_error", "invalid_parameters"),
        (AuthenticationFailed("m"), 401, "authentication_error", "invalid_request_error"),
        (InsufficientBalance("m"), 402, "unknown_error", "invalid_request_error"),
        (RateLimited("m"), 429, "rate_limit_error", "rate_limit_exceeded"),
        (Overloaded("m"), 503, "server_overloaded", "server_overloaded"),
        (EngineFailure("m"), 500, "api_error", "internal_error"),
    ],
)
def test_error_types(error: DeepwellError, status: int, type_: str, code: str) -> None:
    assert error.status == status
    assert error.envelope() == {
        "error": {"message": "m", "type": type_, "param": None, "code": code}
    }
    response = render(error)
    assert response.status_code == status
    assert json.loads(bytes(response.body)) == error.envelope()


def test_param_is_in_the_envelope() -> None:
    assert InvalidRequest("bad", param="stop").envelope()["error"]["param"] == "stop"  # type: ignore[index]


def test_model_not_found_is_an_invalid_request() -> None:
    error = ModelNotFound()
    assert isinstance(error, InvalidRequest)
    assert str(error) == "Model Not Exist"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "Authentication Fails (auth header format should be Bearer sk-...)"),
        ("", "Authentication Fails (auth header format should be Bearer sk-...)"),
        (
            "sk-0000000000000000000000000000abcd",
            "Authentication Fails, Your api key: ****abcd is invalid",
        ),
        ("xy", "Authentication Fails, Your api key: ****xy is invalid"),
    ],
)
def test_authentication_message(key: str | None, message: str) -> None:
    error = AuthenticationFailed.for_key(key)
    assert error.message == message
    assert error.status == 401


# -- validation_error ----------------------------------------------------------------


def test_invalid_json() -> None:
    error = validation_error(
        [{"type": "json_invalid", "loc": ("body", 5), "msg": "x", "ctx": {"error": "EOF"}}]
    )
    assert type(error) is InvalidRequest
    assert error.message == "Failed to parse the request body as JSON: EOF"
    assert error.param is None


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("body", "messages"), "messages"),
        (("messages", 0, "role"), "messages[0].role"),
        (
            ("body", "messages", 2, "tool_calls", 10, "function", "name"),
            "messages[2].tool_calls[10].function.name",
        ),
        (("stream_options", "include_usage"), "stream_options.include_usage"),
    ],
)
def test_wrong_shape_names_the_path(loc: tuple[Any, ...], param: str) -> None:
    error = validation_error([{"type": "missing", "loc": loc, "msg": "Field required"}])
    assert type(error) is InvalidParameters
    assert error.param == param
    assert error.message == (
        f"Failed to deserialize the JSON body into the target type: {param}: Field required"
    )


def test_wrong_shape_at_the_top() -> None:
    error = validation_error(
        [{"type": "model_type", "loc": (), "msg": "Input should be an object"}]
    )
    assert error.param is None
    assert error.message == (
        "Failed to deserialize the JSON body into the target type: Input should be an object"
    )


def test_only_the_first_error_is_reported() -> None:
    error = validation_error(
        [
            {"type": "missing", "loc": ("model",), "msg": "Field required"},
            {"type": "missing", "loc": ("messages",), "msg": "Field required"},
        ]
    )
    assert error.param == "model"


@pytest.mark.parametrize(
    "kind", ["greater_than", "greater_than_equal", "less_than", "less_than_equal"]
)
def test_a_value_out_of_range_is_a_400(kind: str) -> None:
    error = validation_error(
        [{"type": kind, "loc": ("body", "top_logprobs"), "msg": "Input should be ..."}]
    )
    assert type(error) is InvalidRequest
    assert error.status == 400
    assert error.param == "top_logprobs"
    assert error.message == "Invalid top_logprobs value: Input should be ..."


@pytest.mark.parametrize("kind", ["float_parsing", "int_type", "literal_error", "too_short"])
def test_a_wrong_type_or_shape_stays_a_422(kind: str) -> None:
    error = validation_error([{"type": kind, "loc": ("temperature",), "msg": "Input should be"}])
    assert type(error) is InvalidParameters


def test_no_errors_at_all() -> None:
    error = validation_error([])
    assert error.status == 422
    assert error.param is None


# -- through the app -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v2/chat/completions", "/"])
async def test_unknown_path_is_a_404_envelope(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "Not Found",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }


class FailingEngine(FakeEngine):
    """Emits one piece, then raises ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        yield Piece("partial")
        raise self.error


class EmptyEngine(FakeEngine):
    """Ends without ``Done``."""

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        yield Piece("partial")


@pytest.fixture
async def lenient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that receives 500 responses instead of the app's exceptions."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://deepwell.test",
            headers={"Authorization": f"Bearer {KEY}"},
        ) as client,
    ):
        yield client


BODY = {
    "model": "deepseek-v4-flash",
    "messages": [{"role": "user", "content": "hi"}],
    "thinking": {"type": "disabled"},
}


class TestOverloaded:
    @pytest.fixture
    def engine(self) -> FakeEngine:
        return FailingEngine(Overloaded("Server busy, please retry later"))

    async def test_complete(self, lenient: httpx.AsyncClient) -> None:
        response = await lenient.post("/chat/completions", json=BODY)
        assert response.status_code == 503
        assert response.json() == Overloaded("Server busy, please retry later").envelope()

    async def test_stream(self, lenient: httpx.AsyncClient) -> None:
        response = await lenient.post("/chat/completions", json={**BODY, "stream": True})
        assert response.status_code == 200
        blocks = response.text.split("\n\n")
        assert blocks[-2:] == ["data: [DONE]", ""]
        error = json.loads(blocks[-3].removeprefix("data: "))
        assert error == Overloaded("Server busy, please retry later").envelope()
        assert json.loads(blocks[1].removeprefix("data: "))["choices"][0]["delta"] == {
            "content": "partial"
        }


class TestUnexpected:
    @pytest.fixture
    def engine(self) -> FakeEngine:
        return FailingEngine(RuntimeError("secret internals"))

    async def test_complete(self, lenient: httpx.AsyncClient) -> None:
        response = await lenient.post("/chat/completions", json=BODY)
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "api_error",
                "param": None,
                "code": "internal_error",
            }
        }
        assert "secret" not in response.text

    async def test_stream(self, lenient: httpx.AsyncClient) -> None:
        response = await lenient.post("/chat/completions", json={**BODY, "stream": True})
        assert response.status_code == 200
        assert response.text.endswith(
            'data: {"error": {"message": "The server had an error while streaming.", '
            '"type": "api_error", "param": null, "code": "internal_error"}}\n\n'
            "data: [DONE]\n\n"
        )
        assert "secret" not in response.text


class TestNoResult:
    @pytest.fixture
    def engine(self) -> FakeEngine:
        return EmptyEngine()

    async def test_complete(self, lenient: httpx.AsyncClient) -> None:
        response = await lenient.post("/chat/completions", json=BODY)
        assert response.status_code == 500
        assert response.json()["error"]["message"] == "the generation ended without a result"
        assert response.json()["error"]["code"] == "internal_error"
