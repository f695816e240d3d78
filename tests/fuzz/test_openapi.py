"""Schemathesis over ``/openapi.json``, in-process on the fake engine: whatever it sends,
conforming to the declared bodies or not, the answer is never a 5xx, every error is in
the route's envelope (DeepSeek's, or Anthropic's under ``/anthropic``), in a JSON body or
as a stream's last event, and a response matches its declared schema where one is
declared.

Bounded and repeatable: ``EXAMPLES`` examples per operation (and every method a route
does not serve), derandomized (the same examples every run), no example database. The
``/v1`` twins of the routes run the same handlers and are left out.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.fuzz.conftest import KEY, build_app

pytestmark = pytest.mark.fuzz

EXAMPLES = 60
MODEL = "deepseek-v4-flash"

# The document is read from an app that is never started; the cases run on ``app``,
# which serves the same document (checked below).
SPEC = build_app(Path(tempfile.gettempdir()) / "deepwell-fuzz-unused").openapi()
schema = schemathesis.openapi.from_dict(SPEC).exclude(path_regex="^/v1/")


@pytest.fixture(scope="module")
def app(fuzz_app: FastAPI) -> Iterator[FastAPI]:
    """``fuzz_app``, started by schemathesis on its first case and stopped here."""
    yield fuzz_app
    asgi.shutdown_lifespans()


def test_the_document_is_the_one_the_app_serves(app: FastAPI) -> None:
    # The document needs no lifespan: a client outside ``with`` starts none.
    assert TestClient(app).get("/openapi.json").json() == SPEC


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_errors_in_the_envelope(app: FastAPI, case: schemathesis.Case[Any]) -> None:
    steer(case.body)
    response = case.call(app=app, headers={"Authorization": f"Bearer {KEY}"})
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    anthropic = case.path.startswith("/anthropic")
    if response.status_code >= 400:
        assert_envelope(json.loads(response.content), anthropic=anthropic)
    elif any(kind.startswith("text/event-stream") for kind in response.headers["content-type"]):
        for event in events(response.content):
            if "error" in event:
                assert_envelope(event, anthropic=anthropic)


def steer(body: object) -> None:
    """Lead generated bodies past the checks the document cannot state, so they reach
    rendering, the engine and the encoders.

    A random ``model`` is a 400 before anything else is looked at; in half the bodies, a
    message without ``content`` (or a tool message without ``tool_call_id``) is given
    one; a quarter are streamed. Which bodies is decided by their own checksum, so a run
    repeats exactly.
    """
    if not isinstance(body, dict):
        return
    mark = zlib.crc32(json.dumps(body, sort_keys=True).encode())
    if isinstance(body.get("model"), str):
        body["model"] = MODEL
    messages = body.get("messages")
    if mark & 1 and isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                if message.get("content") is None:
                    message["content"] = "Hi"
                if message.get("role") == "tool" and message.get("tool_call_id") is None:
                    message["tool_call_id"] = "call_0"
    if mark & 6 == 6:
        body["stream"] = True


def events(stream: bytes) -> Iterator[Any]:
    """The JSON payloads of an SSE body (``[DONE]`` left out)."""
    for line in stream.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line.removeprefix("data: "))


def assert_envelope(body: Any, *, anthropic: bool) -> None:
    if anthropic:
        assert body["type"] == "error", body
        error = body["error"]
        assert set(error) == {"type", "message"}, body
        assert isinstance(error["type"], str), body
    else:
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
