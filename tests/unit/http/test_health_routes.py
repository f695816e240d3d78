"""``GET /health``: no key needed; 503 when an engine is not ready."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from deepwell.engine.base import EngineHealth
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings


async def test_health_without_a_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health")
    assert response.status_code == 200
    result = response.json()
    assert result["status"] == "ok"
    assert list(result["engines"]) == [DEFAULT_MODEL]
    engine = result["engines"][DEFAULT_MODEL]
    assert engine["state"] == "ready"
    assert engine["sequences_busy"] == 0
    assert engine["kv_total"] == 512


async def test_health_ignores_a_wrong_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health", headers={"Authorization": "Bearer sk-wrong"})
    assert response.status_code == 200


@pytest.mark.parametrize("prefix", ["/v1", "/beta"])
async def test_health_only_at_the_root(anonymous: httpx.AsyncClient, prefix: str) -> None:
    assert (await anonymous.get(f"{prefix}/health")).status_code == 404


async def test_engine_not_ready_is_a_503(
    anonymous: httpx.AsyncClient, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failed() -> EngineHealth:
        return EngineHealth("failed", 0, 8, 0, 0, 512)

    monkeypatch.setattr(engine, "health", failed)
    response = await anonymous.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["engines"][DEFAULT_MODEL]["state"] == "failed"


async def test_an_engine_restarting_is_a_503(
    anonymous: httpx.AsyncClient, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def restarting() -> EngineHealth:
        return EngineHealth("restarting", 0, 8, 0, 0, 512, restarts=1)

    monkeypatch.setattr(engine, "health", restarting)
    response = await anonymous.get("/health")
    assert response.status_code == 503
    assert response.json()["engines"][DEFAULT_MODEL]["restarts"] == 1


async def test_health_shows_the_queue_in_front_of_each_engine(
    anonymous: httpx.AsyncClient,
) -> None:
    queues = (await anonymous.get("/health")).json()["queues"]
    assert queues == {
        DEFAULT_MODEL: {"waiting": 0, "running": 0, "waiting_tokens": 0, "capacity": 8}
    }


@pytest.fixture
def private(settings: Settings) -> Settings:
    settings.metrics.require_admin = True
    settings.admin_token = SecretStr("admin-secret")
    return settings


@pytest.mark.usefixtures("private")
async def test_private_details_are_for_the_admin_token_only(
    anonymous: httpx.AsyncClient,
) -> None:
    plain = await anonymous.get("/health", headers={"Authorization": "Bearer sk-wrong"})
    assert plain.status_code == 200
    assert plain.json() == {"status": "ok"}
    admin = await anonymous.get("/health", headers={"Authorization": "Bearer admin-secret"})
    assert list(admin.json()) == ["status", "engines", "queues"]
