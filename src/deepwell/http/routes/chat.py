"""``POST /chat/completions`` (also under ``/v1``), and under ``/beta`` and ``/v1/beta``
where chat prefix completion is allowed."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from deepwell.dialects import openai
from deepwell.http import sse
from deepwell.http.auth import AuthenticatedCaller
from deepwell.http.body import parse
from deepwell.http.openapi import json_body
from deepwell.http.replies import json_reply
from deepwell.http.state import services, trace
from deepwell.vocabulary import Caller

router = APIRouter()
beta_router = APIRouter()
CHAT_BODY = json_body(openai.ChatCompletionRequest)


@router.post("/chat/completions", response_model=None, openapi_extra=CHAT_BODY)
async def chat_completions(request: Request, caller: AuthenticatedCaller) -> Response:
    return await _chat(request, caller, beta=False)


@beta_router.post("/chat/completions", response_model=None, openapi_extra=CHAT_BODY)
async def beta_chat_completions(request: Request, caller: AuthenticatedCaller) -> Response:
    return await _chat(request, caller, beta=True)


async def _chat(request: Request, caller: Caller, *, beta: bool) -> Response:
    body = await parse(request, openai.ChatCompletionRequest)
    events = await services(request).gateway.chat(
        openai.to_request(body, beta=beta), caller, trace(request)
    )
    if body.stream:
        return sse.stream(events, openai.ChunkEncoder(include_usage=body.include_usage).encode)
    return await json_reply(request, events, openai.collect)
