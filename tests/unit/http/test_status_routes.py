"""``/status`` and ``/status.json``: up or not, uptime and incidents, with no key; and the
``StatusBoard`` behind them, on a clock of its own."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from deepwell.engine.base import EngineHealth
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL
from deepwell.status import StatusBoard

READY = EngineHealth("ready", 0, 8, 0, 0, 512)
RESTARTING = EngineHealth("restarting", 0, 8, 0, 0, 512, restarts=1)


def ready(restarts: int) -> EngineHealth:
    return EngineHealth("ready", 0, 8, 0, 0, 512, restarts=restarts)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_status_is_operational_and_names_no_account(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/status.json")
    assert response.status_code == 200
    status = response.json()
    assert (status["status"], status["api"]) == ("operational", "up")
    [component] = status["components"]
    assert component["name"] == DEFAULT_MODEL
    assert component["models"] == ["deepseek-v4-flash", "deepseek-v4-pro"]
    assert (component["up"], component["uptime"]) == (True, 1.0)
    assert status["incidents"] == []
    assert "alice" not in response.text


async def test_a_restarting_engine_is_degraded_then_an_incident(
    anonymous: httpx.AsyncClient, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = iter([RESTARTING, ready(1)])

    async def health() -> EngineHealth:
        return next(states)

    monkeypatch.setattr(engine, "health", health)
    during = (await anonymous.get("/status.json")).json()
    assert during["status"] == "degraded"
    assert during["components"][0]["up"] is False
    assert [(i["kind"], i["ongoing"]) for i in during["incidents"]] == [("restart", True)]

    after = (await anonymous.get("/status.json")).json()
    assert after["status"] == "operational"
    assert [(i["kind"], i["ongoing"]) for i in after["incidents"]] == [("restart", False)]
    assert after["components"][0]["uptime"] < 1.0


async def test_overloads_show_as_an_incident(app: FastAPI, anonymous: httpx.AsyncClient) -> None:
    board = app.state.services.status
    board.refused("deepseek-v4-flash", "overloaded")
    board.refused("deepseek-v4-flash", "overloaded")
    board.refused("deepseek-v4-flash", "balance")
    status = (await anonymous.get("/status.json")).json()
    assert status["status"] == "degraded"
    [incident] = status["incidents"]
    assert (incident["kind"], incident["component"], incident["refusals"]) == (
        "overload",
        DEFAULT_MODEL,
        2,
    )


async def test_the_status_page_is_static_and_locked_down(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "/console/static/status.js" in response.text


def test_a_restart_between_samples_is_still_an_incident() -> None:
    clock = Clock()
    board = StatusBoard({"flash": "m"}, clock=clock)
    board.sample({"m": ready(0)})
    clock.now += 30
    board.sample({"m": ready(1)})
    [incident] = board.report().incidents
    assert (incident.kind, incident.ended_at) == ("restart", clock.now)
    assert board.report().status == "operational"


def test_an_overload_ends_after_its_quiet_time_and_old_ones_leave() -> None:
    clock = Clock()
    board = StatusBoard({"flash": "m"}, overload_quiet_s=60, window_s=3600, clock=clock)
    board.refused("flash", "overloaded")
    clock.now += 30
    board.refused("flash", "overloaded")
    assert board.report().status == "degraded"
    clock.now += 61
    [incident] = board.report().incidents
    assert (incident.refusals, incident.ended_at) == (2, clock.now - 61)
    assert board.report().status == "operational"
    clock.now += 61
    board.refused("flash", "overloaded")
    assert len(board.report().incidents) == 2
    clock.now += 3600
    assert len(board.report().incidents) == 1


def test_uptime_counts_samples_per_minute() -> None:
    clock = Clock()
    board = StatusBoard({"flash": "m"}, clock=clock)
    board.sample({"m": READY})
    board.sample({"m": EngineHealth("failed", 0, 8, 0, 0, 512)})
    report = board.report()
    assert report.status == "down"
    [component] = report.components
    assert (component.uptime, component.minutes[-1], component.state) == (0.5, 0.5, "failed")
    assert component.minutes[0] is None
