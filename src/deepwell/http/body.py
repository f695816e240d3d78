"""Reading a JSON request body into a wire model, whatever its content type."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from deepwell.errors import InvalidRequest
from deepwell.http.errors import validation_error

M = TypeVar("M", bound=BaseModel)


async def parse(request: Request, model: type[M]) -> M:
    """The body as ``model``: bad JSON is a 400, JSON of the wrong shape a 422.

    Clients such as ``curl -d`` omit ``Content-Type``; the body is JSON all the same.
    """
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("Failed to parse the request body as JSON: the body is empty")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None
