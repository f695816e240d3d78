"""Server-sent events: JSON ``data:`` lines, ``: keep-alive`` comments while the request
waits in the queue, ``data: [DONE]`` at the end."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from deepwell.core.events import KeepAlive
from deepwell.errors import DeepwellError

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE = b": keep-alive\n\n"
EVENT_STREAM = "text/event-stream; charset=utf-8"


def data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


class Events(Protocol[E_co]):
    """What a route streams: events to iterate once, and ``aclose`` to end them (an
    async generator, or a gateway ``Generation``)."""

    def __aiter__(self) -> AsyncIterator[E_co]: ...

    async def aclose(self) -> None: ...


class EventStream(StreamingResponse):
    """A streaming response that closes its events when it ends, however it ends: even
    when the client is gone before the body began, so nothing they hold is leaked."""

    def __init__(
        self, body: AsyncIterator[bytes], events: Events[Any], media_type: str = EVENT_STREAM
    ) -> None:
        super().__init__(body, media_type=media_type, headers=HEADERS)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()


@dataclass(frozen=True, slots=True)
class Framing:
    """How a dialect frames its stream: ``frame`` turns what its encoder made of an event
    into bytes, ``error`` an error once the stream has begun; ``keepalive`` is sent
    while the request waits, ``end`` after the last event."""

    frame: Callable[[Any], bytes]
    error: Callable[[DeepwellError], bytes]
    keepalive: bytes
    end: bytes


OPENAI = Framing(
    frame=data,
    error=lambda exc: data(exc.envelope()),
    keepalive=KEEPALIVE,
    end=b"data: [DONE]\n\n",
)
"""DeepSeek's chat and FIM streams: ``data:`` lines, ``: keep-alive``, ``data: [DONE]``."""


def stream(
    events: Events[Any], encode: Callable[[E], Any], framing: Framing = OPENAI
) -> EventStream:
    """An SSE response of ``encode(event)`` for each event (none where it is None), and a
    keep-alive for each ``KeepAlive`` (``events`` are ``E`` or ``KeepAlive``: typed
    ``Any``, as mypy cannot infer ``E`` from such a union), framed by ``framing``.

    Once the stream has begun, an error becomes the framing's final error event.
    Closing the response (a client disconnect) closes ``events``, which aborts the
    generation.
    """

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(events) as items:
            try:
                async for event in items:
                    if isinstance(event, KeepAlive):
                        yield framing.keepalive
                        continue
                    payload = encode(event)
                    if payload is not None:
                        yield framing.frame(payload)
            except DeepwellError as exc:
                yield framing.error(exc)
            except Exception:
                log.exception("stream failed")
                yield framing.error(DeepwellError("The server had an error while streaming."))
        yield framing.end

    return EventStream(body(), events)
