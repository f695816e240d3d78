"""Server-sent events: JSON ``data:`` lines, ``: keep-alive`` comments while the request
waits in the queue, ``data: [DONE]`` at the end."""

from __future__ import annotations

import asyncio
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

    async def stream_response(self, send: Send) -> None:
        """The body as it comes, except that what is made in one turn of the event loop
        (an upstream's read of several events, a draft's tokens taken at once) goes out
        as one write: a send costs more than making its chunk."""
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        batch = _Batch(send)
        try:
            async for chunk in self.body_iterator:
                await batch.add(chunk.encode(self.charset) if isinstance(chunk, str) else chunk)
            await batch.drain()
        finally:
            batch.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Batch:
    """Chunks gathered until the event loop turns, then sent as one body message."""

    LIMIT = 1 << 16
    """Past this many bytes waiting, the producer waits for the send in flight."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._parts: list[bytes] = []
        self._size = 0
        self._flush: asyncio.Task[None] | None = None

    async def add(self, chunk: bytes | memoryview) -> None:
        if self._size >= self.LIMIT:
            await self.drain()
        self._parts.append(bytes(chunk))
        self._size += len(chunk)
        if self._flush is None or self._flush.done():
            if self._flush is not None:
                self._flush.result()  # a failed send ends the stream
            self._flush = asyncio.ensure_future(self._send_from_next_turn())

    async def drain(self) -> None:
        """Wait until everything added is sent."""
        while self._flush is not None:
            flush = self._flush
            await flush
            if flush is self._flush:
                self._flush = None

    def cancel(self) -> None:
        if self._flush is not None:
            self._flush.cancel()

    async def _send_from_next_turn(self) -> None:
        """Once the producer has made what it could in this turn, send it, and whatever
        it adds while a send is in flight."""
        await asyncio.sleep(0)
        while self._parts:
            body, self._parts, self._size = b"".join(self._parts), [], 0
            await self._send({"type": "http.response.body", "body": body, "more_body": True})


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
