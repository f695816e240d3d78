"""Reading a JSON request body into a wire model, whatever its content type."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from deepwell.errors import InvalidRequest, PayloadTooLarge
from deepwell.http.errors import validation_error
from deepwell.http.state import services

M = TypeVar("M", bound=BaseModel)


async def parse(request: Request, model: type[M]) -> M:
    """The body as ``model``: bad JSON is a 400, JSON of the wrong shape a 422, a body
    over the server's limit a 413 (read no further than the limit).

    Clients such as ``curl -d`` omit ``Content-Type``; the body is JSON all the same.
    """
    raw = await _read(request, services(request).limits.max_body_bytes)
    if not raw.strip():
        raise InvalidRequest("Failed to parse the request body as JSON: the body is empty")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is too large: at most {limit} bytes are accepted")
