"""PrometheusObserver: what each observer call moves, and output Prometheus can parse."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.charges import charge

from deepwell.core.observer import Observer
from deepwell.limits.queue import QueueStats
from deepwell.metrics import PrometheusObserver

FLASH = "deepseek-v4-flash"


def value(observer: PrometheusObserver, name: str, **labels: str) -> float | None:
    return observer.registry.get_sample_value(name, labels)


def families(observer: PrometheusObserver) -> dict[str, str]:
    """Each metric family of the rendered output, with its type."""
    text = generate_latest(observer.registry).decode()
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_it_is_an_observer() -> None:
    observer: Observer = PrometheusObserver()
    observer.settled(charge("r1", 1))


def test_each_observer_has_its_own_registry() -> None:
    first, second = PrometheusObserver(), PrometheusObserver()
    first.refused(FLASH, "balance")
    assert value(first, "deepwell_refusals_total", model=FLASH, reason="balance") == 1
    assert value(second, "deepwell_refusals_total", model=FLASH, reason="balance") is None


def test_settled_counts_the_request_its_tokens_and_cost() -> None:
    observer = PrometheusObserver()
    done = charge("r1", 1, hit_tokens=64, miss_tokens=36, output_tokens=20, reasoning_tokens=5)
    observer.settled(done)
    observer.settled(charge("r2", 2, finish_reason="length"))

    assert value(observer, "deepwell_requests_total", model=FLASH, finish_reason="stop") == 1
    assert value(observer, "deepwell_requests_total", model=FLASH, finish_reason="length") == 1
    assert value(observer, "deepwell_prompt_tokens_total", model=FLASH, kind="hit") == 64
    assert value(observer, "deepwell_prompt_tokens_total", model=FLASH, kind="miss") == 1_000_036
    assert value(observer, "deepwell_output_tokens_total", model=FLASH) == 20
    assert value(observer, "deepwell_reasoning_tokens_total", model=FLASH) == 5
    cost = value(observer, "deepwell_cost_total", model=FLASH, currency="USD")
    assert cost == pytest.approx(float(done.cost + Decimal("0.14")))


def test_refusals_count_by_reason() -> None:
    observer = PrometheusObserver()
    for why in ("balance", "rate_limit", "rate_limit", "overloaded"):
        observer.refused(FLASH, why)

    assert value(observer, "deepwell_refusals_total", model=FLASH, reason="rate_limit") == 2
    assert value(observer, "deepwell_refusals_total", model=FLASH, reason="overloaded") == 1


def test_token_latencies_are_histograms_in_seconds() -> None:
    observer = PrometheusObserver()
    observer.first_token(FLASH, 0.2)
    observer.next_token(FLASH, 0.004)
    observer.next_token(FLASH, 0.006)

    ttft = "deepwell_time_to_first_token_seconds"
    assert value(observer, f"{ttft}_count", model=FLASH) == 1
    assert value(observer, f"{ttft}_bucket", model=FLASH, le="0.1") == 0
    assert value(observer, f"{ttft}_bucket", model=FLASH, le="0.25") == 1
    itl = "deepwell_inter_token_latency_seconds"
    assert value(observer, f"{itl}_count", model=FLASH) == 2
    assert value(observer, f"{itl}_sum", model=FLASH) == pytest.approx(0.01)


def test_the_queue_depth_follows_the_requests_and_their_wait_is_timed() -> None:
    observer = PrometheusObserver()
    observer.queued("qwen", 1)
    observer.queued("qwen", 2)
    assert value(observer, "deepwell_queue_waiting", backing="qwen") == 2

    observer.dispatched("qwen", 1, 0.5)
    assert value(observer, "deepwell_queue_waiting", backing="qwen") == 1
    assert value(observer, "deepwell_queue_wait_seconds_count", backing="qwen") == 1
    assert value(observer, "deepwell_queue_wait_seconds_sum", backing="qwen") == 0.5


def test_published_queues_are_gauges_per_backing_model() -> None:
    observer = PrometheusObserver()
    observer.publish_queues(
        {"qwen": QueueStats(waiting=3, running=8, waiting_tokens=900, capacity=8)}
    )

    assert value(observer, "deepwell_queue_waiting", backing="qwen") == 3
    assert value(observer, "deepwell_queue_running", backing="qwen") == 8
    assert value(observer, "deepwell_queue_waiting_tokens", backing="qwen") == 900
    assert value(observer, "deepwell_queue_capacity", backing="qwen") == 8


def test_http_requests_count_by_route_method_and_status() -> None:
    observer = PrometheusObserver()
    observer.http_request("/chat/completions", "POST", 200)
    observer.http_request("/chat/completions", "POST", 200)
    observer.http_request("unmatched", "BREW", 404)

    name = "deepwell_http_requests_total"
    assert value(observer, name, route="/chat/completions", method="POST", status="200") == 2
    assert value(observer, name, route="unmatched", method="other", status="404") == 1


def test_the_output_parses_and_types_every_family() -> None:
    observer = PrometheusObserver()
    observer.settled(charge("r1", 1))
    observer.first_token(FLASH, 0.1)
    observer.queued("qwen", 1)

    found = families(observer)

    assert found["deepwell_requests"] == "counter"
    assert found["deepwell_cost"] == "counter"
    assert found["deepwell_time_to_first_token_seconds"] == "histogram"
    assert found["deepwell_queue_waiting"] == "gauge"
    assert found["deepwell_engine_ready"] == "gauge"
    assert found["deepwell_cache_hits"] == "counter"
