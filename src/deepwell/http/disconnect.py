"""Racing a handler's work against the client going away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Coroutine
from contextlib import aclosing
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from deepwell.http.sse import Events

T = TypeVar("T")
E = TypeVar("E")

CLIENT_CLOSED_REQUEST = 499


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready."""


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ClientDisconnected


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def json_unless_disconnected(
    request: Request,
    events: Events[E],
    fold: Callable[[AsyncIterable[E]], Coroutine[Any, Any, dict[str, Any]]],
) -> Response:
    """One JSON body folded from ``events``; a client gone first gets nothing (499) and
    its generation is aborted."""
    async with aclosing(events):
        try:
            result = await unless_disconnected(request, fold(events))
        except ClientDisconnected:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JSONResponse(result)
