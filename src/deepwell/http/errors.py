"""Rendering errors into the DeepSeek envelope, in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from deepwell.errors import DeepwellError, InvalidParameters, InvalidRequest
from deepwell.http.disconnect import CLIENT_CLOSED_REQUEST

log = logging.getLogger(__name__)


def render(error: DeepwellError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=error.status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DeepwellError, _on_deepwell_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_deepwell_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DeepwellError)
    return render(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return render(validation_error(exc.errors()))


def validation_error(errors: Any) -> DeepwellError:
    """Bad JSON is a 400, and so is a number out of its range (``temperature: 3``), as
    DeepSeek's other semantic checks are; JSON of the wrong type or shape is a 422.
    Either names the field."""
    first: dict[str, Any] = next(iter(errors), {})
    location = [str(part) for part in first.get("loc", ()) if not _is_tag(part)]
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", "invalid JSON")
        return InvalidRequest(f"Failed to parse the request body as JSON: {detail}")
    path = _path(location)
    message = first.get("msg", "invalid value")
    if first.get("type") in _OUT_OF_RANGE and path:
        return InvalidRequest(f"Invalid {path} value: {message}", param=path)
    where = f"{path}: " if path else ""
    return InvalidParameters(
        f"Failed to deserialize the JSON body into the target type: {where}{message}",
        param=path or None,
    )


# pydantic's error types for a value of the right type outside its bounds.
_OUT_OF_RANGE = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


_TYPE_TAGS = {"body", "str", "int", "float", "bool", "none"}


def _is_tag(part: object) -> bool:
    """pydantic names the member of a union it tried (``str``, ``list[str]``); not a field."""
    text = str(part)
    return text in _TYPE_TAGS or "[" in text or text[:1].isupper()


def _path(location: list[str]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error = DeepwellError(str(exc.detail))
    error.status = exc.status_code
    error.type = "invalid_request_error"
    error.code = "not_found" if exc.status_code == 404 else "invalid_request_error"
    response = render(error)
    response.headers.update(exc.headers or {})
    return response


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    """A client that went away before its request arrived whole: one line, no answer."""
    log.info(
        "client went away before its request body arrived: %s %s", request.method, request.url.path
    )
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return render(DeepwellError("The server had an error while processing your request."))
