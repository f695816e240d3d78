"""``POST /beta/completions`` (also under ``/v1/beta``): FIM completion.

On the base URL without ``/beta`` the path answers a 400 that points to ``/beta``.
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request, Response

from deepwell.dialects import completions
from deepwell.errors import InvalidRequest
from deepwell.http import sse
from deepwell.http.auth import AuthenticatedCaller
from deepwell.http.body import parse
from deepwell.http.openapi import json_body
from deepwell.http.replies import json_reply
from deepwell.http.state import services, trace

router = APIRouter()
base_router = APIRouter()
FIM_BODY = json_body(completions.CompletionRequest)


@router.post("/completions", response_model=None, openapi_extra=FIM_BODY)
async def fim_completions(request: Request, caller: AuthenticatedCaller) -> Response:
    body = await parse(request, completions.CompletionRequest)
    events = await services(request).gateway.complete(
        completions.to_request(body), caller, trace(request)
    )
    with_logprobs = body.logprobs is not None
    if body.stream:
        encoder = completions.ChunkEncoder(
            include_usage=body.include_usage, with_logprobs=with_logprobs
        )
        return sse.stream(events, encoder.encode)
    fold = functools.partial(completions.collect, with_logprobs=with_logprobs)
    return await json_reply(request, events, fold)


@base_router.post("/completions", response_model=None)
async def completions_outside_beta(caller: AuthenticatedCaller) -> Response:
    raise InvalidRequest(
        "FIM completion is a beta feature: use the base URL ending in /beta "
        "(POST /beta/completions)"
    )
