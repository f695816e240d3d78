"""Routing: rendezvous hashing on namespace and first blocks, bounded load, stickiness."""

from __future__ import annotations

from deepwell.engine.remote.replicas import Router

URLS = [f"http://r{i}" for i in range(4)]


def router(**options: float) -> Router:
    return Router.of(URLS, block_tokens=4, route_blocks=2, **options)  # type: ignore[arg-type]


def test_requests_sharing_the_first_blocks_meet_on_one_replica() -> None:
    first = router()
    prompt = list(range(40))
    chosen = first.pick("ns", prompt)
    assert chosen is not None
    other = router()  # another gateway, same hash
    assert other.pick("ns", [*prompt[:8], 99, 98, 97]) is not None
    assert other.ranked("ns", [*prompt[:8], 1], other.replicas)[0].url == chosen.url


def test_namespaces_and_prefixes_spread() -> None:
    chosen = {router().ranked(f"ns{i}", [i] * 8, router().replicas)[0].url for i in range(40)}
    assert chosen == set(URLS)


def test_the_second_phase_of_a_short_prompt_finds_the_first_phase_replica() -> None:
    routing = router()
    short = [5, 6, 7]  # shorter than one block
    first = routing.pick("ns", short)
    assert first is not None
    # (the first phase has ended when the second begins)
    for extra in range(20):
        later = routing.pick("ns", [*short, *range(100, 110 + extra)])
        assert later is not None
        assert later.url == first.url


def test_past_the_imbalance_a_request_goes_to_the_least_loaded() -> None:
    routing = router(imbalance=1.0)
    prompt = [1] * 8
    preferred = routing.ranked("ns", prompt, routing.replicas)[0]
    preferred.in_flight = 3
    chosen = routing.pick("other-ns-with-same-prefix", prompt)
    assert chosen is not None
    spilled = routing.pick("ns", prompt)
    assert spilled is not None
    assert spilled.url != preferred.url
    assert spilled.in_flight == 0


def test_ejected_and_excluded_replicas_are_not_picked() -> None:
    routing = Router.of(URLS[:2], eject_after=2)
    a, b = routing.replicas
    routing.failed(a)
    assert a.healthy
    routing.failed(a)
    assert not a.healthy
    assert routing.pick("ns", [1, 2]) is b
    assert routing.pick("ns", [1, 2], exclude=frozenset({b.url})) is None
    routing.passed(a)
    assert a.healthy
    assert a.failures == 0
