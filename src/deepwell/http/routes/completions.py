"""``POST /beta/completions`` (also under ``/v1/beta``): FIM completion.

On the base URL without ``/beta`` the path answers a 400 that points to ``/beta``.
"""

from __future__ import annotations

from contextlib import aclosing

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from deepwell.dialects import completions
from deepwell.errors import InvalidRequest
from deepwell.http import sse
from deepwell.http.auth import AuthenticatedCaller
from deepwell.http.body import parse
from deepwell.http.disconnect import ClientDisconnected, unless_disconnected
from deepwell.http.state import services

router = APIRouter()
base_router = APIRouter()

CLIENT_CLOSED_REQUEST = 499


@router.post("/completions", response_model=None)
async def fim_completions(request: Request, caller: AuthenticatedCaller) -> Response:
    body = await parse(request, completions.CompletionRequest)
    service = services(request).completion
    events = service.run(service.prepare(completions.to_request(body), caller))
    with_logprobs = body.logprobs is not None
    if body.stream:
        encoder = completions.ChunkEncoder(
            include_usage=body.include_usage, with_logprobs=with_logprobs
        )
        return sse.stream(events, encoder.encode)
    async with aclosing(events):
        try:
            folded = completions.collect(events, with_logprobs=with_logprobs)
            result = await unless_disconnected(request, folded)
        except ClientDisconnected:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JSONResponse(result)


@base_router.post("/completions", response_model=None)
async def completions_outside_beta(caller: AuthenticatedCaller) -> Response:
    raise InvalidRequest(
        "FIM completion is a beta feature: use the base URL ending in /beta "
        "(POST /beta/completions)"
    )
