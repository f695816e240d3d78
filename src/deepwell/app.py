"""The composition root: ``create_app`` builds every part of a deepwell server."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from deepwell import __version__
from deepwell.accounts.keycache import KeyCache
from deepwell.accounts.keys import KeyStore
from deepwell.accounts.limits import LimitStore
from deepwell.accounts.revocations import RevocationFeed, announce
from deepwell.billing.balances import Balances
from deepwell.billing.ledger import Ledger
from deepwell.billing.prices import PriceBook
from deepwell.billing.reserves import Reserves
from deepwell.chat.fim import FimFormat, fim_format
from deepwell.chat.template import ChatTemplate
from deepwell.console import AccountAdmin
from deepwell.core.admission import Admission, Overrides, OverrideSource
from deepwell.core.completion import CompletionService
from deepwell.core.gateway import Gateway, Wallet
from deepwell.core.service import GenerationService
from deepwell.engine.base import Engine
from deepwell.engine.loader import load_engine
from deepwell.http import errors, observability, openapi
from deepwell.http.routes import (
    admin,
    anthropic,
    chat,
    completions,
    console,
    health,
    models,
    status,
    user,
)
from deepwell.http.state import BalanceLookup, KeyLookup, Services
from deepwell.limits.concurrency import Limiter, LocalLimiter
from deepwell.limits.queue import FairQueue
from deepwell.limits.redis import RedisLimiter
from deepwell.models.registry import ModelRegistry
from deepwell.settings import RemoteEngine, Settings
from deepwell.status import StatusBoard, Tee, watching
from deepwell.store.db import Database, open_database

OPENAI_PREFIXES = ("", "/v1")
BETA_PREFIXES = ("/beta", "/v1/beta")


def create_app(
    settings: Settings,
    *,
    engines: dict[str, Engine] | None = None,
    keys: KeyLookup | None = None,
    wallet: Wallet | None = None,
    balances: BalanceLookup | None = None,
    overrides: OverrideSource | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """A FastAPI app for ``settings``. Tests pass fake ``engines``, ``keys``, ``wallet``,
    ``balances`` or limit ``overrides`` here; what is not passed is built from
    ``settings``. ``on_fatal`` hears of an engine that failed beyond repair."""
    registry = ModelRegistry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = _Store(settings, stack)
            key_lookup = keys if keys is not None else await _key_cache(settings, store, stack)
            cache = key_lookup if isinstance(key_lookup, KeyCache) else None
            chosen, written = wallet, None
            if chosen is None:
                reserves = await _open_wallet(settings, store, stack)
                chosen, written = reserves, reserves.written
            balance_lookup = (
                balances
                if balances is not None
                else Balances(await store.database(), written=written)
            )
            live = (
                engines
                if engines is not None
                else await _load_engines(settings, registry, stack, on_fatal)
            )
            board = StatusBoard({m: registry.resolve(m).backing for m in registry.public_ids()})
            await stack.enter_async_context(watching(board, live))
            gateway = Gateway(
                GenerationService(
                    registry,
                    live,
                    _templates(live),
                    json_schema=settings.structured_output.json_schema,
                ),
                CompletionService(registry, live, _fim_formats(settings, live)),
                chosen,
                PriceBook(settings.models),
                Admission(
                    settings,
                    await _limiter(settings, stack),
                    Overrides(
                        overrides if overrides is not None else LimitStore(await store.database())
                    ),
                ),
                await _queues(settings, live),
                currency=settings.billing.currency,
                block_tokens=settings.cache.block_tokens,
                queue=settings.queue,
                observer=Tee(observer, board),
            )
            stack.push_async_callback(gateway.close)
            app.state.services = Services(
                registry,
                gateway,
                live,
                key_lookup,
                balance_lookup,
                charging=settings.billing.enabled,
                currency=settings.billing.currency,
                limits=settings.limits,
                observer=observer,
                admin_token=settings.admin_token,
                private_details=settings.metrics.require_admin,
                anthropic=settings.anthropic,
                accounts=AccountAdmin(
                    store.database,
                    on_revoke=functools.partial(_revoked, settings, cache),
                    written=written,
                ),
                status=board,
            )
            yield

    app = FastAPI(title="deepwell", version=__version__, lifespan=lifespan)
    errors.install(app)
    openapi.install(app)
    observer = observability.install(app, settings)
    for prefix in OPENAI_PREFIXES:
        app.include_router(chat.router, prefix=prefix)
        app.include_router(models.router, prefix=prefix)
        app.include_router(completions.base_router, prefix=prefix)
        app.include_router(user.router, prefix=prefix)
    for prefix in BETA_PREFIXES:
        app.include_router(chat.beta_router, prefix=prefix)
        app.include_router(completions.router, prefix=prefix)
    app.include_router(anthropic.router, prefix=anthropic.PREFIX)
    app.include_router(health.router)
    app.include_router(status.router)
    app.include_router(admin.router)
    app.include_router(console.api)
    app.include_router(console.pages)
    return app


class _Store:
    """The accounts database, opened on first use and closed with ``stack``."""

    def __init__(self, settings: Settings, stack: AsyncExitStack) -> None:
        self._settings = settings
        self._stack = stack
        self._database: Database | None = None

    async def database(self) -> Database:
        if self._database is None:
            self._database = await open_database(self._settings.database)
            self._stack.push_async_callback(self._database.close)
        return self._database


async def _key_cache(settings: Settings, store: _Store, stack: AsyncExitStack) -> KeyCache:
    """Keys from the database, remembered for ``key_cache_s``; with Redis, a revocation
    by any process reaches the cache at once."""
    cache = KeyCache(KeyStore(await store.database()), settings.key_cache_s)
    if settings.redis_url is not None and settings.key_cache_s > 0:
        feed = RevocationFeed(settings.redis_url, cache)
        await feed.start()
        stack.push_async_callback(feed.close)
    return cache


async def _revoked(settings: Settings, cache: KeyCache | None, key_id: str) -> None:
    """A key revoked through this server: forgotten here, announced to the others."""
    if cache is not None:
        cache.forget(key_id)
    await announce(settings.redis_url, key_id)


async def _open_wallet(settings: Settings, store: _Store, stack: AsyncExitStack) -> Reserves:
    """The ledger, after releasing the holds an unfinished earlier run left, behind this
    gateway's reserves (which write what is left when ``stack`` closes)."""
    billing = settings.billing
    low_balance = settings.limits.concurrency.low_balance
    ledger = Ledger(
        await store.database(),
        charging=billing.enabled,
        gateway_id=billing.gateway_id,
        count_below=low_balance,
    )
    await ledger.release_stale(timedelta(hours=billing.stale_hold_hours))
    reserves = Reserves(ledger, keep=low_balance)
    reserves.start()
    stack.push_async_callback(reserves.close)
    return reserves


async def _limiter(settings: Settings, stack: AsyncExitStack) -> Limiter:
    """Concurrency counts in Redis when ``redis_url`` is set (shared by the gateways on
    it), else in this process."""
    if settings.redis_url is None:
        return LocalLimiter()
    limiter = await RedisLimiter.open(
        settings.redis_url,
        gateway_id=settings.billing.gateway_id,
        ttl_s=settings.redis_lease_ttl_s,
    )
    stack.push_async_callback(limiter.close)
    return limiter


async def _load_engines(
    settings: Settings,
    registry: ModelRegistry,
    stack: AsyncExitStack,
    on_fatal: Callable[[BaseException], None] | None,
) -> dict[str, Engine]:
    loaded: dict[str, Engine] = {}
    for name in sorted(registry.backing_names()):
        load = functools.partial(load_engine, name, settings, on_fatal=on_fatal)
        engine = await asyncio.to_thread(load)
        stack.push_async_callback(engine.close)
        loaded[name] = engine
    return loaded


async def _queues(settings: Settings, engines: dict[str, Engine]) -> dict[str, FairQueue]:
    """A queue in front of each engine, as wide as its sequences."""
    queue = settings.queue
    return {
        name: FairQueue(
            (await engine.health()).sequences_total,
            max_requests=queue.max_requests,
            max_prompt_tokens=queue.max_prompt_tokens,
            reserve_s=queue.reserve_s,
            shared=isinstance(settings.backing_models[name].engine, RemoteEngine),
        )
        for name, engine in engines.items()
    }


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
