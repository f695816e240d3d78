"""A non-stream reply: one JSON body folded from a generation's events.

A request that starts at once gets an ordinary JSON response, with its real status if
it fails. A request that has to wait in the queue has its ``200`` committed at its
first keep-alive, then hears a blank line every keep-alive until its JSON body (JSON
parsers skip the leading whitespace); an error after that point can only be the body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from deepwell.core.events import KeepAlive
from deepwell.errors import DeepwellError
from deepwell.http.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, unless_disconnected
from deepwell.http.sse import Events, EventStream

log = logging.getLogger(__name__)

E = TypeVar("E")
Fold = Callable[[AsyncIterable[E]], Coroutine[Any, Any, dict[str, Any]]]

JSON = "application/json"


async def json_reply(
    request: Request,
    events: Events[Any],
    fold: Fold[E],
    error: Callable[[DeepwellError], dict[str, Any]] = DeepwellError.envelope,
) -> Response:
    """The JSON body ``fold`` makes of ``events`` (``E`` or ``KeepAlive``, typed ``Any``
    as in ``sse.stream``); a client gone first gets nothing (499) and its generation is
    aborted. An error after a waiting reply was committed is the body, as ``error``
    renders it (the dialect's envelope)."""
    items = aiter(events)
    try:
        result = await unless_disconnected(request, _unless_waiting(items, fold))
    except ClientDisconnected:
        await events.aclose()
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except BaseException:
        await events.aclose()
        raise
    if isinstance(result, KeepAlive):
        return EventStream(_waited(items, fold, error), events, media_type=JSON)
    await events.aclose()
    return JSONResponse(result)


async def _unless_waiting(
    items: AsyncIterator[E | KeepAlive], fold: Fold[E]
) -> dict[str, Any] | KeepAlive:
    """The folded body of a generation that starts at once, or the ``KeepAlive`` of one
    that waits in the queue (the rest of ``items`` is then still to be read)."""
    first = await anext(items)
    if isinstance(first, KeepAlive):
        return first
    return await fold(_chain(first, items))


async def _waited(
    items: AsyncIterator[E | KeepAlive],
    fold: Fold[E],
    error: Callable[[DeepwellError], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The body of a reply committed while it waited: blank lines, then the JSON."""
    yield b"\n"
    try:
        async for event in items:
            if isinstance(event, KeepAlive):
                yield b"\n"
                continue
            result = await fold(_chain(event, items))
            break
        else:  # pragma: no cover - a generation always ends with an event or an error
            raise DeepwellError("The generation ended without a reply.")
    except DeepwellError as exc:
        result = error(exc)
    except Exception:
        log.exception("reply failed")
        result = error(DeepwellError("The server had an error while processing your request."))
    yield json.dumps(result, ensure_ascii=False).encode()


async def _chain(first: E, rest: AsyncIterator[E | KeepAlive]) -> AsyncIterator[E]:
    yield first
    async for event in rest:
        if not isinstance(event, KeepAlive):
            yield event
