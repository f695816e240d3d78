"""The composition root: ``create_app`` builds every part of a deepwell server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from deepwell import __version__
from deepwell.accounts.keys import KeyStore
from deepwell.chat.fim import FimFormat, fim_format
from deepwell.chat.template import ChatTemplate
from deepwell.core.completion import CompletionService
from deepwell.core.service import GenerationService
from deepwell.engine.base import Engine
from deepwell.engine.loader import load_engine
from deepwell.http import errors
from deepwell.http.routes import chat, completions, health, models
from deepwell.http.state import KeyLookup, Services
from deepwell.models.registry import ModelRegistry
from deepwell.settings import Settings
from deepwell.store.db import open_database

OPENAI_PREFIXES = ("", "/v1")
BETA_PREFIXES = ("/beta", "/v1/beta")


def create_app(
    settings: Settings,
    *,
    engines: dict[str, Engine] | None = None,
    keys: KeyLookup | None = None,
) -> FastAPI:
    """A FastAPI app for ``settings``. Tests pass fake ``engines`` or ``keys`` here."""
    registry = ModelRegistry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            key_lookup = keys if keys is not None else await _open_keys(settings, stack)
            live = (
                engines if engines is not None else await _load_engines(settings, registry, stack)
            )
            generation = GenerationService(registry, live, _templates(live))
            completion = CompletionService(registry, live, _fim_formats(settings, live))
            app.state.services = Services(registry, generation, live, key_lookup, completion)
            yield

    app = FastAPI(title="deepwell", version=__version__, lifespan=lifespan)
    errors.install(app)
    for prefix in OPENAI_PREFIXES:
        app.include_router(chat.router, prefix=prefix)
        app.include_router(models.router, prefix=prefix)
        app.include_router(completions.base_router, prefix=prefix)
    for prefix in BETA_PREFIXES:
        app.include_router(chat.beta_router, prefix=prefix)
        app.include_router(completions.router, prefix=prefix)
    app.include_router(health.router)
    return app


async def _open_keys(settings: Settings, stack: AsyncExitStack) -> KeyLookup:
    database = await open_database(settings.database)
    stack.push_async_callback(database.close)
    return KeyStore(database)


async def _load_engines(
    settings: Settings, registry: ModelRegistry, stack: AsyncExitStack
) -> dict[str, Engine]:
    loaded: dict[str, Engine] = {}
    for name in sorted(registry.backing_names()):
        engine = await asyncio.to_thread(load_engine, name, settings)
        stack.push_async_callback(engine.close)
        loaded[name] = engine
    return loaded


def _fim_formats(settings: Settings, engines: dict[str, Engine]) -> dict[str, FimFormat]:
    """The FIM tokens of every backing model that has them, as its engine's ids."""
    formats: dict[str, FimFormat] = {}
    for name, engine in engines.items():
        backing = settings.backing_models.get(name)
        found = fim_format(name, backing.fim if backing else None, engine)
        if found is not None:
            formats[name] = found
    return formats


def _templates(engines: dict[str, Engine]) -> dict[str, ChatTemplate]:
    return {
        name: ChatTemplate(
            engine.info.chat_template,
            bos_token=engine.info.bos_token,
            eos_token=engine.info.eos_token,
        )
        for name, engine in engines.items()
    }
