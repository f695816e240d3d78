"""RequestLog: an x-request-id, a Trace for the route, one log line per request."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from http_fakes import KEY
from tests.unit.charges import charge

from deepwell.errors import AuthenticationFailed
from deepwell.http import errors
from deepwell.http.observability import install
from deepwell.http.state import trace
from deepwell.logs import FIELDS, JsonFormatter
from deepwell.metrics import PrometheusObserver
from deepwell.settings import MetricsSettings, Settings

LOGGER = "deepwell.requests"

items = APIRouter()


@items.get("/items/{item_id}")
async def item(item_id: str) -> JSONResponse:
    return JSONResponse({"id": item_id})


def tiny_app(settings: Settings) -> tuple[FastAPI, PrometheusObserver | None]:
    app = FastAPI()
    errors.install(app)
    observer = install(app, settings)
    app.include_router(items, prefix="/v1")

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        found = trace(request)
        assert found is not None
        found.account_id, found.model, found.queued_ms = 7, "deepseek-v4-flash", 3
        found.charge = charge(found.request_id, 7, hit_tokens=64, miss_tokens=36, output_tokens=5)
        return JSONResponse({"request_id": found.request_id})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"data: {n}\n\n".encode()

        return StreamingResponse(parts(), media_type="text/event-stream")

    @app.get("/boom")
    async def boom() -> JSONResponse:
        raise RuntimeError("boom")

    @app.get("/refused")
    async def refused() -> JSONResponse:
        raise AuthenticationFailed("no")

    return app, observer


@pytest.fixture
def settings(tmp_path: Path, clean_env: None) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = tiny_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as c:
        yield c


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = getattr(record, FIELDS)
    return found


@pytest.fixture(autouse=True)
def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)


async def test_each_response_has_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/items/a", headers={"x-request-id": "chosen-by-client"})
    second = await client.get("/v1/items/a")

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert "chosen-by-client" not in ids
    assert ids[0] != ids[1]
    assert all(uuid.UUID(i).version == 4 for i in ids)


async def test_one_line_with_the_route_template_never_the_path(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/v1/items/secret-id")

    [record] = lines(caplog)
    assert record.levelno == logging.INFO
    line = fields(record)
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/v1/items/{item_id}", 200)
    assert isinstance(line["duration_ms"], int)
    assert "secret-id" not in record.getMessage()
    assert "route=/v1/items/{item_id} status=200" in record.getMessage()


async def test_the_line_carries_what_the_gateway_put_in_the_trace(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.post(
        "/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, json={"messages": []}
    )

    [record] = lines(caplog)
    line = fields(record)
    assert line["request_id"] == response.json()["request_id"]
    assert line["account_id"] == 7
    assert line["model"] == "deepseek-v4-flash"
    assert line["finish_reason"] == "stop"
    assert (line["prompt_tokens"], line["hit_tokens"], line["miss_tokens"]) == (100, 64, 36)
    assert line["output_tokens"] == 5
    assert (line["ttft_ms"], line["queue_ms"]) == (5, 3)
    assert line["cost"] == str(charge("x", 7, hit_tokens=64, miss_tokens=36, output_tokens=5).cost)
    assert line["currency"] == "USD"


async def test_no_key_or_authorization_header_is_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post(
        "/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, json={"messages": []}
    )
    await client.get("/refused", headers={"Authorization": f"Bearer {KEY}"})

    assert KEY not in caplog.text
    assert all(KEY not in json.dumps(fields(r), default=str) for r in lines(caplog))
    assert all("authorization" not in str(fields(r)).lower() for r in lines(caplog))


async def test_a_stream_is_logged_once_when_it_ends(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/stream")

    assert response.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert "x-request-id" in response.headers
    [record] = lines(caplog)
    assert (fields(record)["route"], fields(record)["status"]) == ("/stream", 200)


async def test_a_route_that_raises_is_logged_once_as_a_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/boom")

    assert response.status_code == 500
    [record] = lines(caplog)
    assert (fields(record)["route"], fields(record)["status"]) == ("/boom", 500)


async def test_a_typed_error_is_logged_with_its_status(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/refused")

    assert response.status_code == 401
    assert "x-request-id" in response.headers
    [record] = lines(caplog)
    assert fields(record)["status"] == 401


async def test_unmatched_paths_are_one_route(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.get("/no/such/thing-42")

    [record] = lines(caplog)
    assert (fields(record)["route"], fields(record)["status"]) == ("unmatched", 404)


async def test_probes_log_at_debug(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.get("/health")

    [record] = lines(caplog)
    assert record.levelno == logging.DEBUG


async def test_requests_are_counted_in_the_metrics(settings: Settings) -> None:
    app, observer = tiny_app(settings)
    assert observer is not None
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as c:
        await c.get("/v1/items/a")
        await c.get("/v1/items/b")
        await c.get("/boom")

    def count(route: str, status: str) -> float | None:
        labels = {"route": route, "method": "GET", "status": status}
        return observer.registry.get_sample_value("deepwell_http_requests_total", labels)

    assert count("/v1/items/{item_id}", "200") == 2
    assert count("/boom", "500") == 1


async def test_with_metrics_off_requests_are_still_logged(
    tmp_path: Path, clean_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    app, observer = tiny_app(Settings(data_dir=tmp_path, metrics=MetricsSettings(enabled=False)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as c:
        response = await c.get("/v1/items/a")
        scraped = await c.get("/metrics")

    assert observer is None
    assert "x-request-id" in response.headers
    assert scraped.status_code == 404
    assert len(lines(caplog)) == 2


async def test_a_request_line_renders_as_one_json_object(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/chat/completions", json={"messages": []})

    [record] = lines(caplog)
    rendered = JsonFormatter().format(record)
    line = json.loads(rendered)
    assert "\n" not in rendered
    assert (line["level"], line["logger"]) == ("INFO", LOGGER)
    assert (line["route"], line["status"], line["account_id"]) == ("/chat/completions", 200, 7)
    assert line["cost"] == fields(record)["cost"]
