"""Gateway admission: concurrency (429), the engine's queue (503), keep-alives while
queued, the queue's time limit, and draining at shutdown."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from tests.unit.charges import FakeWallet
from tests.unit.core.gateways import CALLER, REPLY, build, chat

from deepwell.billing.ledger import Held
from deepwell.core.admission import Admission
from deepwell.core.events import Finished, KeepAlive, Started
from deepwell.core.gateway import Gateway, Generation
from deepwell.engine.fake import FakeEngine
from deepwell.errors import Overloaded, RateLimited
from deepwell.limits.concurrency import LocalLimiter
from deepwell.settings import Settings
from deepwell.vocabulary import Caller

pytestmark = pytest.mark.usefixtures("clean_env")

OTHER = Caller(account_id=8, account="bob", key_id="key_fedcba9876543210")


def settings(**tree: Any) -> Settings:
    tree.setdefault("queue", {})
    tree["queue"].setdefault("keepalive_s", 0.01)
    return Settings.model_validate(tree)


def gateway_with(wallet: FakeWallet, capacity: int = 8, **tree: Any) -> Gateway:
    engine = FakeEngine(REPLY, context_length=4096)
    return build(engine, wallet, settings(**tree), capacity=capacity)


async def drain(generation: Generation[Any]) -> list[object]:
    return [event async for event in generation]


async def test_the_request_past_the_limit_is_a_429_naming_both_numbers() -> None:
    gateway = gateway_with(FakeWallet(), limits={"concurrency": {"per_account": 2}})
    open_ = [await gateway.chat(chat(), CALLER) for _ in range(2)]
    with pytest.raises(RateLimited) as refused:
        await gateway.chat(chat(), CALLER)
    assert "current concurrency is 3" in refused.value.message
    assert "limit of 2" in refused.value.message
    assert refused.value.status == 429
    other = await gateway.chat(chat(), OTHER)  # another account is served
    await other.aclose()
    await open_[0].aclose()
    await (await gateway.chat(chat(), CALLER)).aclose()  # a place was given back
    await open_[1].aclose()


def two_gateways(*, shared: bool) -> tuple[Gateway, Gateway]:
    """Two gateways on one limiter, with 1 place and 1 queued request each."""
    limiter = LocalLimiter()
    engine = FakeEngine(REPLY, context_length=4096)
    tight = settings(queue={"max_requests": 1})
    a, b = (
        build(engine, FakeWallet(), tight, capacity=1, limiter=limiter, shared=shared)
        for _ in range(2)
    )
    return a, b


async def test_gateways_on_one_limiter_share_a_shared_engines_queue_bound() -> None:
    a, b = two_gateways(shared=True)
    running = await a.chat(chat(), CALLER)
    waiting = await b.chat(chat(), OTHER)  # 2 admitted on the two: the bound, 1 + 1
    with pytest.raises(Overloaded) as refused:
        await a.chat(chat(), OTHER)
    assert refused.value.status == 503
    assert refused.value.message == "Server overloaded"
    await running.aclose()
    await waiting.aclose()
    await (await b.chat(chat(), OTHER)).aclose()  # the places came back


async def test_gateways_with_engines_of_their_own_keep_their_own_bounds() -> None:
    a, b = two_gateways(shared=False)
    running = await a.chat(chat(), CALLER)
    other = await b.chat(chat(), OTHER)
    queued = await a.chat(chat(), OTHER)  # waits on a's own engine
    for generation in (running, other, queued):
        await generation.aclose()


async def test_a_refused_request_leaves_no_hold() -> None:
    wallet = FakeWallet()
    gateway = gateway_with(wallet, limits={"concurrency": {"per_account": 1}})
    first = await gateway.chat(chat(), CALLER)
    with pytest.raises(RateLimited):
        await gateway.chat(chat(), CALLER)
    assert len(wallet.holds) == 1
    await first.aclose()
    assert wallet.holds == {}
    assert len(wallet.charges) == 1


async def test_a_low_balance_lowers_the_limit_and_gives_the_hold_back() -> None:
    wallet = FakeWallet()
    wallet.available = Decimal("0")
    gateway = gateway_with(wallet)
    first = await gateway.chat(chat(), CALLER)
    with pytest.raises(RateLimited) as refused:
        await gateway.chat(chat(), CALLER)
    assert "based on your remaining balance" in refused.value.message
    assert "limit of 1" in refused.value.message
    assert len(wallet.holds) == 1
    await first.aclose()


async def test_each_user_id_can_be_capped() -> None:
    gateway = gateway_with(FakeWallet(), limits={"concurrency": {"per_user": 1}})
    first = await gateway.chat(chat(user_id="u1"), CALLER)
    with pytest.raises(RateLimited) as refused:
        await gateway.chat(chat(user_id="u1"), CALLER)
    assert "user_id u1" in refused.value.message
    second = await gateway.chat(chat(user_id="u2"), CALLER)
    await first.aclose()
    await second.aclose()


async def test_a_full_queue_is_a_503_at_once() -> None:
    wallet = FakeWallet()
    gateway = gateway_with(wallet, capacity=1, queue={"max_requests": 1})
    running = await gateway.chat(chat(), CALLER)
    waiting = await gateway.chat(chat(), CALLER)
    with pytest.raises(Overloaded) as refused:
        await gateway.chat(chat(), OTHER)
    assert refused.value.status == 503
    assert refused.value.message == "Server overloaded"
    assert len(wallet.holds) == 2
    await running.aclose()
    await waiting.aclose()
    assert gateway.queues()["qwen2.5-coder-0.5b-instruct"].waiting == 0


async def test_a_queued_request_hears_keepalives_then_runs() -> None:
    gateway = gateway_with(FakeWallet(), capacity=1)
    running = await gateway.chat(chat(), CALLER)
    queued = await gateway.chat(chat(), OTHER)
    assert isinstance(await anext(queued), KeepAlive)
    assert isinstance(await anext(queued), KeepAlive)
    await drain(running)
    events = await drain(queued)
    assert isinstance(events[-1], Finished)
    started = next(event for event in events if not isinstance(event, KeepAlive))
    assert isinstance(started, Started)


async def test_a_request_not_started_in_time_ends_with_an_error() -> None:
    wallet = FakeWallet()
    gateway = gateway_with(wallet, capacity=1, queue={"max_wait_s": 0.05})
    running = await gateway.chat(chat(), CALLER)
    queued = await gateway.chat(chat(), OTHER)
    with pytest.raises(Overloaded, match=r"not started within 0\.05 seconds"):
        await drain(queued)
    assert [c.finish_reason for c in wallet.charges] == ["error"]
    await running.aclose()


async def test_draining_refuses_new_requests_and_ends_open_ones_at_its_deadline() -> None:
    wallet = FakeWallet()
    gateway = gateway_with(wallet, capacity=1)
    running = await gateway.chat(chat(), CALLER)
    queued = await gateway.chat(chat(), OTHER)
    assert isinstance(await anext(running), Started)
    gateway.drain(0.05)
    with pytest.raises(Overloaded, match="shutting down"):
        await gateway.chat(chat(), CALLER)
    await asyncio.sleep(0.1)
    with pytest.raises(Overloaded, match="shutting down"):
        await drain(running)
    with pytest.raises(Overloaded, match="shutting down"):
        await drain(queued)
    await gateway.close()
    assert len(wallet.charges) == 2
    assert wallet.holds == {}


async def test_a_request_that_ends_within_the_drain_finishes() -> None:
    wallet = FakeWallet()
    gateway = gateway_with(wallet)
    running = await gateway.chat(chat(), CALLER)
    gateway.drain(5)
    events = await drain(running)
    assert isinstance(events[-1], Finished)
    await gateway.close()
    assert [c.finish_reason for c in wallet.charges] == ["stop"]


async def test_a_burst_on_a_low_balance_lets_the_first_requests_through() -> None:
    wallet = FakeWallet()
    wallet.available = Decimal("0.5")  # half of low_balance: half of the limit of 4
    gateway = gateway_with(wallet, limits={"concurrency": {"per_account": 4}})
    results = await asyncio.gather(
        *(gateway.chat(chat(), CALLER) for _ in range(4)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Generation)]
    assert len(admitted) == 2
    assert all(isinstance(r, RateLimited) for r in results if r not in admitted)
    for generation in admitted:
        await generation.aclose()


async def test_a_low_balance_lets_the_first_hold_of_a_burst_through() -> None:
    """Requests counted 1, 2, 3 may place their holds in another order: each is judged by
    the better of its two places, so the first hold goes through whatever its count."""
    admission = Admission(settings(), LocalLimiter())
    entries = [await admission.enter(CALLER.account_id, "deepseek-v4-flash", None) for _ in "abc"]
    low = Decimal("0")  # the floor: one request at a time
    await admission.check_balance(entries[2], Held(low, holders=1))
    with pytest.raises(RateLimited) as refused:
        await admission.check_balance(entries[1], Held(low, holders=2))
    assert "current concurrency is 2" in refused.value.message
    await admission.check_balance(entries[0], Held(low, holders=3))  # counted first
