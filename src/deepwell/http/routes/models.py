"""``GET /models``: the public model ids."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from deepwell.core.auth import Caller
from deepwell.http.auth import authenticate
from deepwell.http.state import services

router = APIRouter()


@router.get("/models")
async def list_models(request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    registry = services(request).registry
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "owned_by": "deepseek"}
            for model_id in registry.public_ids()
        ],
    }
