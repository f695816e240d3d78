"""Gateway: admit against a hold, run, and settle exactly once on every ending."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import time
from decimal import Decimal

import pytest
from tests.unit.charges import FakeWallet
from tests.unit.core.gateways import CALLER, NOON, REPLY, FailingEngine, build, chat

from deepwell.core.completion import CompletionRequest
from deepwell.core.events import Finished, Started, TextDelta
from deepwell.core.gateway import INLINE_CHARS, Gateway
from deepwell.engine.base import EngineEvent, EngineRequest
from deepwell.engine.fake import FakeEngine
from deepwell.errors import EngineFailure, InsufficientBalance
from deepwell.settings import Prices, PriceWindow, Settings

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(REPLY, context_length=4096)


@pytest.fixture
def wallet() -> FakeWallet:
    return FakeWallet()


@pytest.fixture
def gateway(engine: FakeEngine, wallet: FakeWallet) -> Gateway:
    return build(engine, wallet)


async def test_a_finished_reply_is_charged_what_its_usage_says(
    gateway: Gateway, wallet: FakeWallet
) -> None:
    generation = await gateway.chat(chat(max_tokens=100), CALLER)
    events = [event async for event in generation]
    started, finished = events[0], events[-1]
    assert isinstance(started, Started)
    assert isinstance(finished, Finished)
    assert started.model == "deepseek-v4-flash"
    (charge,) = wallet.charges
    assert charge.request_id == started.id
    assert charge.finish_reason == "stop"
    usage = finished.usage
    assert (charge.hit_tokens, charge.miss_tokens) == (0, usage.prompt_tokens)
    assert charge.output_tokens == usage.completion_tokens == len(REPLY)
    assert charge.model == "deepseek-v4-flash"
    assert charge.key_id == CALLER.key_id
    assert charge.ttft_ms is not None
    assert charge.started_at == NOON
    await generation.aclose()
    assert len(wallet.charges) == 1


async def test_the_hold_is_the_worst_case(gateway: Gateway, wallet: FakeWallet) -> None:
    generation = await gateway.chat(chat(max_tokens=100), CALLER)
    started = await anext(generation)
    assert isinstance(started, Started)
    prompt = len("<|user|>hi\n<|assistant|>")
    expected = (prompt * Decimal("0.14") + 100 * Decimal("0.28")) / 1_000_000
    assert wallet.holds[started.id] == expected
    await generation.aclose()


async def test_a_refused_hold_is_a_402_before_anything_runs(
    engine: FakeEngine, wallet: FakeWallet
) -> None:
    wallet.refuse = True
    calls: list[EngineRequest] = []
    original = engine.generate

    def spy(request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        calls.append(request)
        return original(request)

    engine.generate = spy  # type: ignore[method-assign]
    gateway = build(engine, wallet)
    with pytest.raises(InsufficientBalance, match="Insufficient Balance"):
        await gateway.chat(chat(), CALLER)
    with pytest.raises(InsufficientBalance):
        await gateway.complete(CompletionRequest("deepseek-v4-flash", "def f():"), CALLER)
    assert calls == []
    assert wallet.charges == []


async def test_a_reply_cut_by_its_consumer_is_charged_what_it_generated(
    gateway: Gateway, wallet: FakeWallet, engine: FakeEngine
) -> None:
    generation = await gateway.chat(chat(max_tokens=100), CALLER)
    texts = []
    async for event in generation:
        if isinstance(event, TextDelta):
            texts.append(event.text)
        if len(texts) == 3:
            break
    await generation.aclose()
    await generation.aclose()
    assert engine.active == 0
    (charge,) = wallet.charges
    assert charge.finish_reason == "cancelled"
    assert charge.output_tokens == 3
    assert charge.miss_tokens == len("<|user|>hi\n<|assistant|>")


async def test_a_generation_never_iterated_is_settled_at_zero(
    gateway: Gateway, wallet: FakeWallet
) -> None:
    generation = await gateway.chat(chat(), CALLER)
    await generation.aclose()
    (charge,) = wallet.charges
    assert charge.finish_reason == "cancelled"
    assert (charge.hit_tokens, charge.miss_tokens, charge.output_tokens) == (0, 0, 0)
    assert charge.ttft_ms is None


async def test_an_engine_failure_is_settled_as_an_error(wallet: FakeWallet) -> None:
    gateway = build(FailingEngine(REPLY), wallet)
    generation = await gateway.chat(chat(), CALLER)
    with pytest.raises(EngineFailure):
        async for _ in generation:
            pass
    await generation.aclose()
    (charge,) = wallet.charges
    assert charge.finish_reason == "error"
    assert charge.output_tokens == 2


async def test_a_cancelled_consumer_still_settles(wallet: FakeWallet) -> None:
    engine = FakeEngine(REPLY * 50, context_length=4096)
    gateway = build(engine, wallet)
    generation = await gateway.chat(chat(max_tokens=1000), CALLER)
    started = asyncio.Event()

    async def consume() -> None:
        async with aclosing(generation):
            async for event in generation:
                if isinstance(event, TextDelta):
                    started.set()
                    await asyncio.sleep(0.01)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gateway.close()
    (charge,) = wallet.charges
    assert charge.finish_reason == "cancelled"
    assert 1 <= charge.output_tokens < 1000
    assert engine.active == 0


async def test_cache_hits_are_charged_in_whole_blocks(
    engine: FakeEngine, gateway: Gateway, wallet: FakeWallet
) -> None:
    engine.cached = 150
    generation = await gateway.chat(chat("x" * 200, max_tokens=5), CALLER)
    events = [event async for event in generation]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.usage.cache_hit_tokens == 128
    (charge,) = wallet.charges
    assert charge.hit_tokens == 128
    assert charge.miss_tokens == finished.usage.prompt_tokens - 128


async def test_the_price_window_of_admission_applies(
    engine: FakeEngine, wallet: FakeWallet
) -> None:
    settings = Settings()
    half = Prices(
        cache_hit_input=Decimal("0.0014"), cache_miss_input=Decimal("0.07"), output=Decimal("0.14")
    )
    window = PriceWindow(start=time(11), end=time(13), prices=half)
    settings.models["deepseek-v4-flash"].price_windows = [window]
    gateway = build(engine, wallet, settings)
    generation = await gateway.chat(chat(max_tokens=5), CALLER)
    [_ async for _ in generation]
    (charge,) = wallet.charges
    assert charge.quote.window == "off-peak"
    assert charge.quote.output == Decimal("0.14")


async def test_fim_goes_through_the_same_door(gateway: Gateway, wallet: FakeWallet) -> None:
    generation = await gateway.complete(
        CompletionRequest("deepseek-v4-pro", "def f():", max_tokens=4), CALLER
    )
    events = [event async for event in generation]
    assert isinstance(events[0], Started)
    assert events[0].model == "deepseek-v4-pro"
    (charge,) = wallet.charges
    assert charge.model == "deepseek-v4-pro"
    assert charge.output_tokens == 4
    assert charge.finish_reason == "length"
    assert charge.quote.miss == Decimal("0.435")


async def test_a_long_prompt_is_prepared_off_the_event_loop_a_short_one_on_it(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    service = gateway._chat
    original = service.prepare

    def spy(*args: object) -> object:
        threads.append(threading.get_ident())
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "prepare", spy)
    for content in ("x" * INLINE_CHARS, "hi"):
        generation = await gateway.chat(chat(content, max_tokens=2), CALLER)
        await generation.aclose()
    long, short = threads
    assert long != threading.get_ident()
    assert short == threading.get_ident()


async def test_each_request_has_its_own_id(gateway: Gateway, wallet: FakeWallet) -> None:
    for _ in range(2):
        generation = await gateway.chat(chat(max_tokens=2), CALLER)
        [_ async for _ in generation]
    first, second = wallet.charges
    assert first.request_id != second.request_id


async def test_close_waits_for_open_requests_to_settle(
    gateway: Gateway, wallet: FakeWallet
) -> None:
    generation = await gateway.chat(chat(), CALLER)

    async def end_later() -> None:
        await asyncio.sleep(0.1)
        await generation.aclose()

    ending = asyncio.create_task(end_later())
    await gateway.close()
    assert len(wallet.charges) == 1
    await ending


async def test_close_gives_up_on_requests_that_never_end(
    engine: FakeEngine, wallet: FakeWallet
) -> None:
    gateway = build(engine, wallet, close_timeout=0.1)
    generation = await gateway.chat(chat(), CALLER)
    await gateway.close()
    assert wallet.charges == []
    await generation.aclose()
    assert len(wallet.charges) == 1
