"""A lean HTTP/1.1 load client for measuring servers that answer in about a millisecond.

httpx's connection pool costs the client more CPU per request than a fast server spends
answering it (about 12 ms a request at 64 connections against ``bench/stub_upstream.py``,
where the stub spends 0.25 ms), so a benchmark driven by it measures the client. This
one is raw asyncio over uvloop: one keep-alive connection per concurrent client, a
request written in one piece, the response read by its ``Content-Length`` or its chunks.
Loopback only; no TLS, no redirects, nothing a benchmark does not need.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlsplit


class ResponseError(RuntimeError):
    """A response other than 200, or a body that did not end as it should."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection to ``base_url``."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: object, headers: dict[str, str]) -> Response:
        """POST ``body`` as JSON; the whole response (reconnects once if the server had
        closed an idle connection)."""
        payload = json.dumps(body).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        for attempt in (0, 1):
            fresh = self._writer is None
            try:
                reader, writer = await self._open()
                writer.write(request)
                return await self._read(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def _read(self, reader: asyncio.StreamReader) -> Response:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if fields.get("transfer-encoding") == "chunked":
            body = await _chunks(reader)
        else:
            body = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection") == "close":
            self.close()
        return Response(status, body)


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])
