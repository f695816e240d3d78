"""Building gateways over the fake engine, for the gateway's tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime

from tests.unit.charges import FakeWallet

from deepwell.billing.prices import PriceBook
from deepwell.chat.fim import FimFormat
from deepwell.chat.template import ChatTemplate
from deepwell.core.admission import Admission
from deepwell.core.completion import CompletionService
from deepwell.core.gateway import Gateway
from deepwell.core.service import GenerationService
from deepwell.core.types import GenerationRequest
from deepwell.engine.base import EngineEvent, EngineRequest
from deepwell.engine.fake import FakeEngine
from deepwell.errors import EngineFailure
from deepwell.limits.concurrency import Limiter, LocalLimiter
from deepwell.limits.queue import FairQueue
from deepwell.models.registry import ModelRegistry
from deepwell.settings import Settings
from deepwell.vocabulary import Caller, Message

CALLER = Caller(account_id=7, account="alice", key_id="key_0123456789abcdef")
REPLY = "Hello from the fake engine."
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FailingEngine(FakeEngine):
    """Generates two tokens, then fails."""

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        count = 0
        async for event in super().generate(request):
            yield event
            count += 1
            if count == 3:
                raise EngineFailure("the engine broke")


def build(
    engine: FakeEngine,
    wallet: FakeWallet,
    settings: Settings | None = None,
    now: datetime = NOON,
    close_timeout: float = 5,
    capacity: int = 8,
    limiter: Limiter | None = None,
    shared: bool = False,
) -> Gateway:
    """A gateway over ``engine``; gateways given one ``limiter`` count together, as
    several gateways on one Redis do, and with ``shared`` their engines' queue bounds
    too (as for a remote engine)."""
    settings = settings or Settings()
    registry = ModelRegistry(settings)
    engines = {name: engine for name in registry.backing_names()}
    templates = {name: ChatTemplate(engine.info.chat_template) for name in engines}
    fim = {name: FimFormat(prefix=1, suffix=2, middle=3) for name in engines}
    queue = settings.queue
    return Gateway(
        GenerationService(registry, engines, templates),
        CompletionService(registry, engines, fim),
        wallet,
        PriceBook(settings.models),
        Admission(settings, limiter or LocalLimiter()),
        {
            name: FairQueue(
                capacity,
                max_requests=queue.max_requests,
                max_prompt_tokens=queue.max_prompt_tokens,
                shared=shared,
            )
            for name in engines
        },
        currency="USD",
        block_tokens=64,
        queue=queue,
        now=lambda: now,
        close_timeout=close_timeout,
    )


def chat(content: str = "hi", **fields: object) -> GenerationRequest:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("thinking", False)
    return GenerationRequest(messages=(Message("user", content),), **fields)  # type: ignore[arg-type]
