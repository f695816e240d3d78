"""FairQueue: bounded, and fair across accounts."""

from __future__ import annotations

from deepwell.limits.queue import FairQueue, Place


def queue(capacity: int = 1, max_requests: int = 10, max_tokens: int = 1000) -> FairQueue:
    return FairQueue(capacity, max_requests=max_requests, max_prompt_tokens=max_tokens)


def entered(q: FairQueue, account: int, tokens: int = 1) -> Place:
    place = q.enter(account, tokens)
    assert place is not None
    return place


def test_a_request_runs_at_once_while_there_is_room() -> None:
    q = queue(capacity=2)
    assert entered(q, 1).running
    assert entered(q, 1).running
    assert not entered(q, 1).running
    assert q.stats().running == 2
    assert q.stats().waiting == 1


def test_leaving_starts_the_next_waiting_request() -> None:
    q = queue()
    first, second = entered(q, 1), entered(q, 2)
    assert not second.running
    q.leave(first)
    assert second.running
    assert first.state == "left"


def test_a_freed_place_goes_to_the_account_with_the_fewest_running() -> None:
    q = queue(capacity=2)
    heavy = [entered(q, 1) for _ in range(6)]
    light = entered(q, 2)
    q.leave(heavy[0])
    assert light.running
    assert not heavy[2].running


def test_accounts_with_as_many_running_take_turns() -> None:
    q = queue()
    running = entered(q, 9)
    a1, a2, b1 = entered(q, 1), entered(q, 1), entered(q, 2)
    q.leave(running)
    assert a1.running
    q.leave(a1)
    assert b1.running
    assert not a2.running
    q.leave(b1)
    assert a2.running


def test_a_full_queue_refuses_at_once() -> None:
    q = queue(max_requests=1)
    entered(q, 1)
    entered(q, 1)
    assert q.enter(2, 1) is None


def test_the_prompt_tokens_waiting_are_bounded() -> None:
    q = queue(max_tokens=100)
    entered(q, 1, tokens=5000)  # runs at once: only waiting prompts count
    entered(q, 1, tokens=60)
    assert q.enter(2, 50) is None
    assert q.enter(2, 40) is not None
    assert q.stats().waiting_tokens == 100


def test_no_queue_at_all_refuses_what_cannot_run() -> None:
    q = queue(max_requests=0)
    entered(q, 1)
    assert q.enter(1, 1) is None


def test_a_waiting_request_that_gives_up_frees_its_place() -> None:
    q = queue(max_requests=1)
    entered(q, 1)
    waiting = entered(q, 1)
    q.leave(waiting)
    assert q.stats().waiting == 0
    assert q.enter(2, 1) is not None


async def test_wait_returns_when_the_turn_comes() -> None:
    q = queue()
    first, second = entered(q, 1), entered(q, 1)
    assert not await second.wait(0.01)
    q.leave(first)
    assert await second.wait(1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_place_just_given_back_stays_reserved_for_its_account() -> None:
    clock = Clock()
    q = FairQueue(4, max_requests=10, max_prompt_tokens=1000, reserve_s=2, clock=clock)
    light = [entered(q, 1), entered(q, 1)]
    heavy = [entered(q, 2) for _ in range(5)]
    assert [p.running for p in heavy] == [True, True, False, False, False]
    q.leave(light[0])
    assert not heavy[2].running  # the light account's share is kept for it
    clock.now = 0.5
    assert entered(q, 1).running  # its next request finds its place
    q.leave(light[1])
    clock.now = 3.0  # the light account has been quiet for longer than reserve_s
    q.leave(heavy[0])
    assert heavy[2].running
    assert heavy[3].running


def test_an_account_alone_uses_every_place() -> None:
    q = queue(capacity=3)
    assert all(entered(q, 1).running for _ in range(3))


async def test_a_lapsed_reservation_lets_waiting_requests_run() -> None:
    q = FairQueue(2, max_requests=10, max_prompt_tokens=1000, reserve_s=0.05)
    light = entered(q, 1)
    heavy = [entered(q, 2) for _ in range(3)]
    q.leave(light)
    assert not heavy[1].running
    assert await heavy[1].wait(1)
