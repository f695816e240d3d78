"""Server-sent events: JSON ``data:`` lines, ``data: [DONE]`` at the end."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from fastapi.responses import StreamingResponse

from deepwell.errors import DeepwellError

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


E = TypeVar("E")


def stream(events: AsyncGenerator[E, None], encode: Callable[[E], Any]) -> StreamingResponse:
    """An SSE response of ``encode(event)`` for each event (none where it is None).

    Once the stream has begun, an error becomes a final ``data: {"error": ...}`` line.
    Closing the response (a client disconnect) closes ``events``, which aborts the
    generation.
    """

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(events) as items:
            try:
                async for event in items:
                    payload = encode(event)
                    if payload is not None:
                        yield data(payload)
            except DeepwellError as exc:
                yield data(exc.envelope())
            except Exception:
                log.exception("stream failed")
                yield data(DeepwellError("The server had an error while streaming.").envelope())
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=HEADERS)
