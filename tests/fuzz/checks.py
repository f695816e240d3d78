"""What the fuzz tests check of an answer, and how they lead generated bodies on."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

MODEL = "deepseek-v4-flash"
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def steer(body: object, *, max_tokens: int | None = None, repair_all: bool = False) -> None:
    """Lead generated bodies past the checks the document cannot state, so they reach
    rendering, the engine and the encoders.

    A random ``model`` is a 400 before anything else is looked at; in half the bodies, a
    message without ``content`` (or a tool message without ``tool_call_id``) is given
    one; a quarter are streamed. Which bodies is decided by their own checksum, so a run
    repeats exactly. ``max_tokens`` caps what a body asks for, and is what a body that asks
    for nothing gets, and ``repair_all`` repairs every body's messages (for a real engine,
    whose examples are few).
    """
    if not isinstance(body, dict):
        return
    mark = zlib.crc32(json.dumps(body, sort_keys=True).encode())
    if isinstance(body.get("model"), str):
        body["model"] = MODEL
    messages = body.get("messages")
    if (repair_all or mark & 1) and isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                if message.get("content") is None:
                    message["content"] = "Hi"
                if message.get("role") == "tool" and message.get("tool_call_id") is None:
                    message["tool_call_id"] = "call_0"
    if mark & 6 == 6:
        body["stream"] = True
    if max_tokens is not None:
        for name in TOKEN_FIELDS:
            asked = body.get(name)
            if isinstance(asked, int) and asked > max_tokens:
                body[name] = max_tokens
        if all(body.get(name) is None for name in TOKEN_FIELDS):
            body["max_tokens"] = max_tokens


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


def assert_answer(path: str, status: int, content_type: str, content: bytes) -> None:
    """Never a 5xx; an error, whole or as a stream's event, in the route's envelope."""
    assert status < 500, content
    anthropic = path.startswith("/anthropic")
    if status >= 400:
        assert_envelope(json.loads(content), anthropic=anthropic)
    elif content_type.startswith("text/event-stream"):
        for event in events(content):
            if "error" in event:
                assert_envelope(event, anthropic=anthropic)
