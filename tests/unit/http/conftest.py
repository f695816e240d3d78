"""An app built by ``create_app`` on a fake engine and fake keys, driven in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from http_fakes import KEY, REPLY, FakeKeys, FakeWallet

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, LegacyAlias, Settings

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
LONG_GONE = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(REPLY, context_length=512)


@pytest.fixture
def keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture
def wallet() -> FakeWallet:
    return FakeWallet()


@pytest.fixture
def settings(tmp_path: Path, clean_env: None) -> Settings:
    return Settings(
        data_dir=tmp_path,
        aliases={
            "deepseek-chat": LegacyAlias(
                target="deepseek-v4-flash", thinking=False, retires_at=FAR_FUTURE
            ),
            "deepseek-coder": LegacyAlias(
                target="deepseek-v4-flash", thinking=False, retires_at=LONG_GONE
            ),
        },
    )


@pytest.fixture
def app(settings: Settings, engine: FakeEngine, keys: FakeKeys, wallet: FakeWallet) -> FastAPI:
    return create_app(
        settings, engines={DEFAULT_MODEL: engine}, keys=keys, wallet=wallet, balances=wallet
    )


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a key, inside the app's lifespan."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://deepwell.test") as client,
    ):
        yield client


@pytest.fixture
def client(anonymous: httpx.AsyncClient) -> httpx.AsyncClient:
    """The same client, sending the known key."""
    anonymous.headers["Authorization"] = f"Bearer {KEY}"
    return anonymous
