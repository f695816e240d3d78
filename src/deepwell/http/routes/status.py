"""``GET /status`` (a page) and ``GET /status.json``: whether the API and each backing
model are up, their recent uptime and incidents. No key needed.

What it shows comes from ``Services.status``, sampled from the engines as it answers:
states, uptime per minute, restarts and overloads. It names no account, key or prompt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from deepwell.http.routes.console import static_file
from deepwell.http.state import services
from deepwell.status import Incident, StatusReport

router = APIRouter(tags=["status"])


@router.get("/status", include_in_schema=False)
async def status_page() -> Response:
    return static_file("status.html")


@router.get("/status.json", summary="The service's status, uptime and recent incidents")
async def status_json(request: Request) -> dict[str, Any]:
    found = services(request)
    board = found.status
    if board is None:
        raise HTTPException(404, "Not Found")
    board.sample({name: await engine.health() for name, engine in found.engines.items()})
    return report_json(board.report())


def report_json(report: StatusReport) -> dict[str, Any]:
    return {
        "status": report.status,
        "api": "up",
        "updated_at": _time(datetime.now(UTC).timestamp()),
        "window_s": report.window_s,
        "components": [
            {
                "name": c.backing,
                "models": list(c.models),
                "state": c.state,
                "up": c.state == "ready",
                "uptime": c.uptime,
                "recent_minutes": list(c.minutes),
            }
            for c in report.components
        ],
        "incidents": [_incident(incident) for incident in report.incidents],
    }


_TITLES = {
    "restart": "Engine restarted after a failure",
    "outage": "Engine failed",
    "overload": "Overloaded: requests refused with 503",
}


def _incident(incident: Incident) -> dict[str, Any]:
    return {
        "kind": incident.kind,
        "title": _TITLES[incident.kind],
        "component": incident.backing,
        "started_at": _time(incident.started_at),
        "ended_at": _time(incident.ended_at),
        "ongoing": incident.ended_at is None,
        "refusals": incident.refusals,
    }


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
