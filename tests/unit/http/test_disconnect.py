"""Racing a handler's work against the client going away."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import Request

from deepwell.http.disconnect import ClientDisconnected, unless_disconnected


class Client:
    """A stand-in request whose ``receive`` reports a disconnect once ``gone`` is set."""

    def __init__(self, *, body_messages: int = 0) -> None:
        self.gone = asyncio.Event()
        self.body_messages = body_messages

    async def receive(self) -> dict[str, Any]:
        if self.body_messages:
            self.body_messages -= 1
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def as_request(self) -> Request:
        return self  # type: ignore[return-value]


async def test_work_finishing_first_returns_its_result() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 42

    assert await unless_disconnected(Client().as_request(), work()) == 42


async def test_work_errors_propagate() -> None:
    async def work() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await unless_disconnected(Client().as_request(), work())


async def test_disconnect_cancels_the_work() -> None:
    client = Client(body_messages=2)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def work() -> int:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def hang_up() -> None:
        await started.wait()
        client.gone.set()

    hang_up_task = asyncio.create_task(hang_up())
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(unless_disconnected(client.as_request(), work()), timeout=5)
    await hang_up_task
    assert cancelled.is_set()
