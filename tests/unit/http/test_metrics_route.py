"""GET /metrics: the observer's metrics, the engines' and queues' figures, the admin token."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from tests.unit.charges import charge

from deepwell.engine.fake import FakeEngine
from deepwell.http import errors
from deepwell.http.observability import install
from deepwell.limits.queue import QueueStats
from deepwell.metrics import PrometheusObserver
from deepwell.settings import DEFAULT_MODEL, MetricsSettings, Settings

ADMIN = "admin-0123456789"


class FakeGateway:
    def queues(self) -> dict[str, QueueStats]:
        return {DEFAULT_MODEL: QueueStats(waiting=2, running=8, waiting_tokens=512, capacity=8)}


def app_for(settings: Settings) -> tuple[FastAPI, PrometheusObserver]:
    app = FastAPI()
    errors.install(app)
    observer = install(app, settings)
    assert observer is not None
    engines = {DEFAULT_MODEL: FakeEngine()}
    app.state.services = SimpleNamespace(engines=engines, gateway=FakeGateway(), observer=observer)
    return app, observer


@pytest.fixture
def base(tmp_path: Path, clean_env: None) -> Settings:
    return Settings(data_dir=tmp_path)


async def scrape(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as client:
        return await client.get("/metrics", headers=headers)


def samples(response: httpx.Response) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


async def test_metrics_render_the_observer_engines_and_queues(base: Settings) -> None:
    app, observer = app_for(base)
    observer.settled(charge("r1", 1))

    response = await scrape(app)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response)
    backing = frozenset({("backing", DEFAULT_MODEL)})
    finished = frozenset({("model", "deepseek-v4-flash"), ("finish_reason", "stop")})
    assert found["deepwell_requests_total", finished] == 1
    assert found["deepwell_engine_ready", backing] == 1
    assert found["deepwell_engine_sequences", backing] == 8
    assert found["deepwell_queue_waiting", backing] == 2
    assert found["deepwell_queue_waiting_tokens", backing] == 512


async def test_metrics_are_open_unless_admin_is_required(base: Settings) -> None:
    app, _ = app_for(base.model_copy(update={"admin_token": SecretStr(ADMIN)}))

    assert (await scrape(app)).status_code == 200


@pytest.fixture
def guarded(base: Settings) -> FastAPI:
    settings = base.model_copy(
        update={"admin_token": SecretStr(ADMIN), "metrics": MetricsSettings(require_admin=True)}
    )
    app, _ = app_for(settings)
    return app


async def test_with_require_admin_the_admin_token_opens_metrics(guarded: FastAPI) -> None:
    response = await scrape(guarded, {"Authorization": f"Bearer {ADMIN}"})

    assert response.status_code == 200
    assert "deepwell_engine_ready" in response.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN}, {"Authorization": "Bearer "}],
)
async def test_with_require_admin_anything_else_is_a_401_envelope(
    guarded: FastAPI, headers: dict[str, str]
) -> None:
    response = await scrape(guarded, headers)

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert ADMIN not in response.text


async def test_with_require_admin_and_no_token_every_scrape_is_a_401(
    base: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = app_for(base.model_copy(update={"metrics": MetricsSettings(require_admin=True)}))

    assert (await scrape(app)).status_code == 401
    assert (await scrape(app, {"Authorization": "Bearer "})).status_code == 401
    assert "admin_token is not" in caplog.text


async def test_metrics_off_means_no_route(tmp_path: Path, clean_env: None) -> None:
    app = FastAPI()
    errors.install(app)

    observer = install(app, Settings(data_dir=tmp_path, metrics=MetricsSettings(enabled=False)))

    assert observer is None
    assert (await scrape(app)).status_code == 404
