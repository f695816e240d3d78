"""A tiny, fast OpenAI-chat upstream for measuring what a gateway adds.

    python bench/stub_upstream.py [--port 8100]

Raw asyncio HTTP/1.1 with keep-alive, no framework: ``POST /v1/chat/completions`` (also
``/chat/completions``) answers at once with a two-token reply, as one JSON body or, with
``"stream": true``, as server-sent events (with a usage chunk when
``stream_options.include_usage`` is set) in a chunked body; ``GET /health`` and
``GET /v1/models`` answer 200. Anything else is a 404. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import Any

import uvloop  # uvicorn[standard] brings it

PIECES = ("Hello", " there")
MODELS = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()


def _reply(body: dict[str, Any]) -> bytes:
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", ())) // 4 + 1
    return json.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(PIECES)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": len(PIECES),
                "total_tokens": prompt + len(PIECES),
            },
        }
    ).encode()


def _events(body: dict[str, Any]) -> list[bytes]:
    base = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in PIECES]
    events.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", ())) // 4 + 1
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(PIECES),
            "total_tokens": prompt + len(PIECES),
        }
        events.append(
            b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n"
        )
    events.append(b"data: [DONE]\n\n")
    return events


def _response(status: str, content_type: str, payload: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _stream(events: list[bytes]) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    body = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
    return head + body + b"0\r\n\r\n"


def answer(method: str, path: str, payload: bytes) -> bytes:
    path = path.split("?", 1)[0]
    if method == "GET" and path in ("/health", "/v1/models", "/models"):
        return _response("200 OK", "application/json", MODELS)
    if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
        body = json.loads(payload or b"{}")
        if body.get("stream"):
            return _stream(_events(body))
        return _response("200 OK", "application/json", _reply(body))
    return _response("404 Not Found", "application/json", b'{"error": "not found"}')


class Http(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; bodies by ``content-length`` only."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self._buffer) < end + 4 + length:
                return
            payload = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            self._transport.write(answer(method, path, payload))


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8100)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
