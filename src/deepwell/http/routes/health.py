"""``GET /health``: liveness and the engines' state. No key needed.

200 only while every engine is ``ready``; an engine ``restarting`` after a failure, or
``failed`` for good, makes it a 503.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from deepwell.http.state import services

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    engines: dict[str, Any] = {}
    for name, engine in services(request).engines.items():
        engines[name] = asdict(await engine.health())
    ready = all(e["state"] == "ready" for e in engines.values())
    body = {"status": "ok" if ready else "degraded", "engines": engines}
    return JSONResponse(body, status_code=200 if ready else 503)
