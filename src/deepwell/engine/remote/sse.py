"""Reading an upstream's server-sent events: one JSON object per ``data:`` line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from deepwell.errors import EngineFailure


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[Mapping[str, Any]]:
    """The JSON objects of ``response``'s ``data:`` lines, up to ``[DONE]`` or the end. An
    event that is an error (llama-server, vLLM and SGLang send ``{"error": ...}``) ends
    the stream with an ``EngineFailure``. The body is read to its end, past ``[DONE]``,
    so that its connection goes back to the pool instead of being closed."""
    done = False
    async for line in _lines(response):
        if done or not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        if not data:
            continue
        try:
            event = json.loads(data)
        except ValueError:
            raise EngineFailure("The model server sent an event that is not JSON.") from None
        if not isinstance(event, dict):
            continue
        if "error" in event:
            raise EngineFailure(f"The model server failed: {error_message(event)}")
        yield event


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body's lines, as bytes (JSON is read from UTF-8 bytes as it is; decoding
    every chunk to text first costs more than the events' own parsing)."""
    rest = b""
    async for chunk in response.content.iter_any():
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            yield line
    if rest:
        yield rest


def error_message(body: object, limit: int = 300) -> str:
    """The message of an upstream's error body, on one line and bounded."""
    error = body.get("error", body) if isinstance(body, Mapping) else body
    message = error.get("message", error) if isinstance(error, Mapping) else error
    return " ".join(str(message).split())[:limit] or "no message"
