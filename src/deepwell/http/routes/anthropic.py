"""The Anthropic Messages API under ``/anthropic``: ``POST /v1/messages`` (also
``/messages``), ``POST /v1/messages/count_tokens``, ``GET /v1/models`` and the
``/api/hello`` probe of Claude Code.

Keys come as ``Authorization: Bearer`` (SDK 2.x, ``ANTHROPIC_AUTH_TOKEN``) or
``x-api-key`` (SDK 1.x, ``ANTHROPIC_API_KEY``); Bearer wins when both are sent. Every
error of these routes is rendered in Anthropic's envelope, and streams are framed as
Anthropic's: an ``event:`` line per event, ``ping`` while waiting, no ``[DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from deepwell.dialects.anthropic import replies
from deepwell.dialects.anthropic.errors import error_body
from deepwell.dialects.anthropic.requests import to_request
from deepwell.dialects.anthropic.wire import CountTokensRequest, MessagesRequest
from deepwell.errors import AuthenticationFailed, DeepwellError
from deepwell.http import sse
from deepwell.http.auth import bearer_token
from deepwell.http.body import parse
from deepwell.http.errors import validation_error
from deepwell.http.openapi import json_body
from deepwell.http.replies import json_reply
from deepwell.http.state import services, trace
from deepwell.vocabulary import Caller

PREFIX = "/anthropic"
MODELS_CREATED = datetime(2026, 4, 1, tzinfo=UTC)
"""The ``created_at`` the models listing shows."""


def _frame(events: list[replies.StreamEvent]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()
        for name, payload in events
    )


FRAMING = sse.Framing(
    frame=_frame,
    error=lambda exc: _frame([("error", error_body(exc))]),
    keepalive=_frame([("ping", {"type": "ping"})]),
    end=b"",
)


class AnthropicRoute(APIRoute):
    """A route whose errors, whatever raised them, are rendered in Anthropic's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except DeepwellError as exc:
                return _error(exc)
            except RequestValidationError as exc:
                return _error(validation_error(exc.errors()))

        return route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A method the route does not serve (405) is answered in Anthropic's envelope too."""
        try:
            await super().handle(scope, receive, send)
        except HTTPException as exc:
            error = DeepwellError(str(exc.detail))
            error.status = exc.status_code
            response = _error(error)
            response.headers.update(exc.headers or {})
            await response(scope, receive, send)


def _error(exc: DeepwellError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=exc.status)


async def authenticate(request: Request) -> Caller:
    key = bearer_token(request) or request.headers.get("x-api-key", "").strip() or None
    caller = await services(request).keys.authenticate(key) if key else None
    if caller is None:
        raise AuthenticationFailed.for_key(key)
    return caller


AnthropicCaller = Annotated[Caller, Depends(authenticate)]
router = APIRouter(route_class=AnthropicRoute)


@router.post("/v1/messages", response_model=None, openapi_extra=json_body(MessagesRequest))
@router.post("/messages", response_model=None, include_in_schema=False)
async def messages(request: Request, caller: AnthropicCaller) -> Response:
    body = await parse(request, MessagesRequest)
    found = services(request)
    core = to_request(body, found.anthropic, found.registry.public_ids())
    events = await found.gateway.chat(core, caller, trace(request))
    if body.stream:
        return sse.stream(events, replies.StreamEncoder().encode, FRAMING)
    return await json_reply(request, events, replies.collect, error_body)


@router.post(
    "/v1/messages/count_tokens",
    response_model=None,
    openapi_extra=json_body(CountTokensRequest),
)
async def count_tokens(request: Request, caller: AnthropicCaller) -> dict[str, int]:
    body = await parse(request, CountTokensRequest)
    found = services(request)
    core = to_request(body, found.anthropic, found.registry.public_ids())
    return {"input_tokens": await found.gateway.count_tokens(core, caller)}


@router.get("/v1/models")
async def list_models(request: Request, caller: AnthropicCaller) -> dict[str, Any]:
    ids = [model_id for model_id, _ in services(request).registry.listing()]
    created = MODELS_CREATED.isoformat().replace("+00:00", "Z")
    data = [
        {"type": "model", "id": model_id, "display_name": model_id, "created_at": created}
        for model_id in ids
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }


@router.api_route("/api/hello", methods=["GET", "HEAD"], include_in_schema=False)
async def hello() -> Response:
    """Claude Code probes this before it starts."""
    return Response(status_code=200)
