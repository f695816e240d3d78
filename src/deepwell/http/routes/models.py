"""``GET /models``: the public model ids."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from deepwell.http.auth import AuthenticatedCaller
from deepwell.http.state import services

router = APIRouter()


@router.get("/models")
async def list_models(request: Request, caller: AuthenticatedCaller) -> dict[str, Any]:
    registry = services(request).registry
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "owned_by": owner}
            for model_id, owner in registry.listing()
        ],
    }
