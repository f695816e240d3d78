"""``GET /health``: liveness, the engines' state and the queues in front of them. No key
needed.

With ``metrics.require_admin``, only the admin token sees more than the status. 200 only
while every engine is ``ready``; an engine ``restarting`` after a failure, or
``failed`` for good, makes it a 503.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from deepwell.http.admin import is_admin
from deepwell.http.state import services

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    found = services(request)
    engines: dict[str, Any] = {}
    for name, engine in found.engines.items():
        engines[name] = asdict(await engine.health())
    ready = all(e["state"] == "ready" for e in engines.values())
    body: dict[str, Any] = {"status": "ok" if ready else "degraded"}
    if not found.private_details or is_admin(request, found.admin_token):
        queues = {name: asdict(stats) for name, stats in found.gateway.queues().items()}
        body |= {"engines": engines, "queues": queues}
    return JSONResponse(body, status_code=200 if ready else 503)
