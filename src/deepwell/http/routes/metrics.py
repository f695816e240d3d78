"""``GET /metrics``: the Prometheus text format, with the engines' and queues' figures
read at the moment of the scrape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from deepwell.http.state import services

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    svc = services(request)
    observer = svc.observer
    if observer is None:
        raise HTTPException(404, "Not Found")
    observer.publish_engines({name: await e.health() for name, e in svc.engines.items()})
    observer.publish_queues(svc.gateway.queues())
    return Response(generate_latest(observer.registry), media_type=CONTENT_TYPE_LATEST)
