"""Server-sent events: one ``data:`` line per event, ``[DONE]`` last, errors in-band."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from deepwell.core.events import Event, TextDelta
from deepwell.errors import RateLimited
from deepwell.http import sse


class Source:
    """An event generator that records whether it was closed."""

    def __init__(self, texts: list[str], error: Exception | None = None) -> None:
        self.texts = texts
        self.error = error
        self.closed = False

    async def events(self) -> AsyncGenerator[Event, None]:
        try:
            for text in self.texts:
                yield TextDelta(text)
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


def encode(event: Event) -> Any:
    assert isinstance(event, TextDelta)
    return {"text": event.text}


async def body_of(response: StreamingResponse) -> bytes:
    out = b""
    async for part in response.body_iterator:
        out += part.encode() if isinstance(part, str) else bytes(part)
    return out


def test_data_line_keeps_unicode() -> None:
    assert sse.data({"t": "é😀"}) == 'data: {"t": "é😀"}\n\n'.encode()
    assert sse.data([1, None]) == b"data: [1, null]\n\n"


async def test_stream_body_and_headers() -> None:
    source = Source(["a", "b"])
    response = sse.stream(source.events(), encode)
    assert response.media_type == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert await body_of(response) == (
        b'data: {"text": "a"}\n\ndata: {"text": "b"}\n\ndata: [DONE]\n\n'
    )
    assert source.closed


async def test_empty_stream_still_ends_with_done() -> None:
    assert await body_of(sse.stream(Source([]).events(), encode)) == b"data: [DONE]\n\n"


async def test_deepwell_error_becomes_an_error_line() -> None:
    source = Source(["a"], RateLimited("slow down"))
    body = await body_of(sse.stream(source.events(), encode))
    blocks = body.decode().split("\n\n")
    assert blocks[0] == 'data: {"text": "a"}'
    assert json.loads(blocks[1].removeprefix("data: ")) == RateLimited("slow down").envelope()
    assert blocks[2:] == ["data: [DONE]", ""]
    assert source.closed


async def test_unexpected_error_is_generic() -> None:
    source = Source([], KeyError("internal detail"))
    body = await body_of(sse.stream(source.events(), encode))
    assert b"internal detail" not in body
    first = json.loads(body.decode().split("\n\n")[0].removeprefix("data: "))
    assert first["error"]["message"] == "The server had an error while streaming."
    assert first["error"]["code"] == "internal_error"
    assert body.endswith(b"data: [DONE]\n\n")


async def test_closing_the_body_closes_the_events() -> None:
    source = Source(["a", "b", "c"])
    response = sse.stream(source.events(), encode)
    iterator = response.body_iterator
    assert await anext(iterator) == b'data: {"text": "a"}\n\n'  # type: ignore[call-overload]
    assert not source.closed
    await iterator.aclose()  # type: ignore[attr-defined]
    assert source.closed


class Closable:
    """Events that record ``aclose``, whether or not they were ever iterated."""

    def __init__(self) -> None:
        self.closed = 0

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return Source(["a"]).events()

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_response_gone_before_its_body_began_closes_its_events() -> None:
    events = Closable()
    response = sse.stream(events, encode)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        raise OSError("the client is gone")

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}}
    with pytest.raises(ClientDisconnect):
        await response(scope, receive, send)
    assert events.closed == 1
