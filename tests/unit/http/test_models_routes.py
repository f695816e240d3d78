"""``GET /models`` under ``/`` and ``/v1``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from http_fakes import KEY, FakeKeys

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import Prices, PublicModel, Settings


@pytest.mark.parametrize("prefix", ["", "/v1"])
async def test_models(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.get(f"{prefix}/models")
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [
            {"id": "deepseek-v4-flash", "object": "model", "owned_by": "deepseek"},
            {"id": "deepseek-v4-pro", "object": "model", "owned_by": "deepseek"},
            # deepseek-chat retires in 2999; deepseek-coder retired in 2000 and is not listed.
            {"id": "deepseek-chat", "object": "model", "owned_by": "deepseek"},
        ],
    }


@pytest.mark.parametrize("prefix", ["/beta", "/v1/beta"])
async def test_no_models_under_beta(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.get(f"{prefix}/models")
    assert response.status_code == 404


@pytest.mark.parametrize("prefix", ["", "/v1"])
async def test_models_need_a_key(anonymous: httpx.AsyncClient, prefix: str) -> None:
    response = await anonymous.get(f"{prefix}/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    wrong = await anonymous.get(f"{prefix}/models", headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == (
        "Authentication Fails, Your api key: ****nope is invalid"
    )


async def test_models_report_configured_owner(clean_env: None, tmp_path: Path) -> None:
    prices = Prices(cache_hit_input=Decimal(0), cache_miss_input=Decimal(0), output=Decimal(0))
    settings = Settings(
        data_dir=tmp_path,
        models={"house-model": PublicModel(prices=prices, owned_by="acme")},
        aliases={},
    )
    engine = FakeEngine()
    app: FastAPI = create_app(
        settings, engines={"qwen2.5-coder-0.5b-instruct": engine}, keys=FakeKeys()
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://deepwell.test",
            headers={"Authorization": f"Bearer {KEY}"},
        ) as client,
    ):
        response = await client.get("/models")
    assert response.json()["data"] == [{"id": "house-model", "object": "model", "owned_by": "acme"}]
