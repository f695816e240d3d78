"""HTTP clients (httpx2, what the OpenAI SDK runs on) that keep the JSON bodies their SDK
sends, so a test can show what the client really asked for."""

from __future__ import annotations

import json
from typing import Any

import httpx2

TIMEOUT = httpx2.Timeout(300.0, connect=10.0)


class Sent:
    """The bodies of the requests one test's clients sent, in order. ``close`` closes
    the sync clients it made; an async one is the test's to close."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._clients: list[httpx2.Client] = []

    def record(self, request: httpx2.Request) -> None:
        body = json.loads(request.content) if request.content else {}
        self.bodies.append(body)

    async def arecord(self, request: httpx2.Request) -> None:
        self.record(request)

    def client(self) -> httpx2.Client:
        client = httpx2.Client(timeout=TIMEOUT, event_hooks={"request": [self.record]})
        self._clients.append(client)
        return client

    def async_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=TIMEOUT, event_hooks={"request": [self.arecord]})

    def close(self) -> None:
        for client in self._clients:
            client.close()
