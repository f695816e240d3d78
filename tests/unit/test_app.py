"""create_app: routes and prefixes, and what the lifespan builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from deepwell import app as app_module
from deepwell.accounts.keys import KeyStore
from deepwell.app import create_app
from deepwell.billing.balances import Balances
from deepwell.engine.fake import FakeEngine
from deepwell.http.state import Services
from deepwell.settings import DEFAULT_MODEL, Settings
from deepwell.store.db import open_database
from deepwell.vocabulary import Caller

pytestmark = pytest.mark.usefixtures("clean_env")

BODY = {
    "model": "deepseek-v4-flash",
    "messages": [{"role": "user", "content": "hi"}],
    "thinking": {"type": "disabled"},
}


class NoKeys:
    async def authenticate(self, key: str) -> Caller | None:
        return None


class ClosingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__("ok")
        self.closed = False

    async def close(self) -> None:
        self.closed = True


@asynccontextmanager
async def serving(app: FastAPI, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
        ) as client,
    ):
        yield client


def test_routes(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), engines={DEFAULT_MODEL: FakeEngine()})
    paths = app.openapi()["paths"]
    routes = {(path, method.upper()) for path, methods in paths.items() for method in methods}
    assert routes == {
        ("/chat/completions", "POST"),
        ("/v1/chat/completions", "POST"),
        ("/beta/chat/completions", "POST"),
        ("/v1/beta/chat/completions", "POST"),
        ("/completions", "POST"),
        ("/v1/completions", "POST"),
        ("/beta/completions", "POST"),
        ("/v1/beta/completions", "POST"),
        ("/models", "GET"),
        ("/v1/models", "GET"),
        ("/user/balance", "GET"),
        ("/v1/user/balance", "GET"),
        ("/health", "GET"),
        ("/anthropic/v1/messages", "POST"),
        ("/anthropic/v1/messages/count_tokens", "POST"),
        ("/anthropic/v1/models", "GET"),
        ("/status.json", "GET"),
        ("/admin/accounts", "GET"),
        ("/admin/accounts/{name}", "GET"),
        ("/admin/accounts/{name}/top-ups", "POST"),
        ("/admin/top-ups", "GET"),
        ("/admin/keys", "GET"),
        ("/admin/keys", "POST"),
        ("/admin/keys/{key_id}", "DELETE"),
        ("/admin/usage", "GET"),
        ("/console/api/session", "GET"),
        ("/console/api/account", "GET"),
        ("/console/api/keys", "GET"),
        ("/console/api/keys", "POST"),
        ("/console/api/keys/{key_id}", "DELETE"),
        ("/console/api/usage", "GET"),
        ("/console/api/requests/{request_id}", "GET"),
    }


async def test_lifespan_builds_the_services(tmp_path: Path) -> None:
    engine = FakeEngine()
    keys = NoKeys()
    app = create_app(Settings(data_dir=tmp_path), engines={DEFAULT_MODEL: engine}, keys=keys)
    async with app.router.lifespan_context(app):
        services = app.state.services
        assert isinstance(services, Services)
        assert services.engines == {DEFAULT_MODEL: engine}
        assert services.keys is keys
        listed = [model_id for model_id, _ in services.registry.listing()]
        assert listed[:2] == ["deepseek-v4-flash", "deepseek-v4-pro"]


async def test_given_engines_are_not_loaded_or_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_engine must not be called when engines are given")

    monkeypatch.setattr(app_module, "load_engine", refuse)
    engine = ClosingEngine()
    app = create_app(Settings(data_dir=tmp_path), engines={DEFAULT_MODEL: engine}, keys=NoKeys())
    async with app.router.lifespan_context(app):
        pass
    assert engine.closed is False


async def test_engines_are_loaded_per_backing_model_and_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[tuple[str, ClosingEngine]] = []

    def load(name: str, settings: Settings, **options: object) -> ClosingEngine:
        assert settings.data_dir == tmp_path
        engine = ClosingEngine()
        loaded.append((name, engine))
        return engine

    monkeypatch.setattr(app_module, "load_engine", load)
    app = create_app(Settings(data_dir=tmp_path), keys=NoKeys())
    async with app.router.lifespan_context(app):
        assert [name for name, _ in loaded] == [DEFAULT_MODEL]
        assert app.state.services.engines == {DEFAULT_MODEL: loaded[0][1]}
        assert not loaded[0][1].closed
    assert loaded[0][1].closed


async def funded_key(settings: Settings, amount: str = "1") -> str:
    """A new key of account ``alice``, with ``amount`` USD topped up."""
    async with await open_database(settings.database) as database:
        created = await KeyStore(database).create("alice", "laptop")
        await Balances(database).credit("alice", Decimal(amount), "USD", granted=False)
    return created.key


async def test_keys_and_money_come_from_the_database_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    key = await funded_key(settings)
    app = create_app(settings, engines={DEFAULT_MODEL: FakeEngine("from db")})
    async with serving(app, key) as client:
        response = await client.post("/chat/completions", json=BODY)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "from db"
        wrong = await client.post(
            "/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-other"}
        )
        assert wrong.status_code == 401
        balance = (await client.get("/user/balance")).json()
    assert balance["is_available"] is True
    assert balance["balance_infos"][0]["topped_up_balance"] == "0.99"
    assert (tmp_path / "deepwell.db").exists()


async def test_prompts_are_rendered_with_the_engines_template(tmp_path: Path) -> None:
    engine = FakeEngine("ok")
    engine._info = replace(
        engine.info,
        chat_template="{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}",
        bos_token="<BOS>",
    )
    settings = Settings(data_dir=tmp_path)
    key = await funded_key(settings)
    app = create_app(settings, engines={DEFAULT_MODEL: engine})
    async with serving(app, key) as client:
        response = await client.post("/chat/completions", json=BODY)
    assert response.json()["usage"]["prompt_tokens"] == len("<BOS>[hi]")
