"""Engine figures: published EngineHealth, shown at the next scrape."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from deepwell.engine.base import EngineHealth
from deepwell.metrics import PrometheusObserver

TIERS = {
    "ram": {"entries": 3, "bytes": 4096, "hits": 7, "evictions": 1, "errors": 0},
    "disk": {"entries": 2, "bytes": 8192, "hits": 3, "misses": 1, "evictions": 0, "errors": 2},
}


def health(state: str = "ready", **fields: object) -> EngineHealth:
    figures: dict[str, object] = {
        "sequences_busy": 2,
        "sequences_total": 8,
        "queue_length": 1,
        "kv_used": 300,
        "kv_total": 4096,
        "prefix_reused_tokens": 128,
        "cache": TIERS,
    }
    figures.update(fields)
    return EngineHealth(state, **figures)  # type: ignore[arg-type]


def value(observer: PrometheusObserver, name: str, **labels: str) -> float | None:
    return observer.registry.get_sample_value(name, labels)


def test_engine_figures_are_shown_per_backing_model() -> None:
    observer = PrometheusObserver()
    observer.publish_engines({"qwen": health(), "other": health("failed", sequences_busy=0)})

    assert value(observer, "deepwell_engine_ready", backing="qwen") == 1
    assert value(observer, "deepwell_engine_ready", backing="other") == 0
    assert value(observer, "deepwell_engine_sequences_busy", backing="qwen") == 2
    assert value(observer, "deepwell_engine_sequences", backing="qwen") == 8
    assert value(observer, "deepwell_engine_queue_length", backing="qwen") == 1
    assert value(observer, "deepwell_engine_kv_cells_used", backing="qwen") == 300
    assert value(observer, "deepwell_engine_kv_cells", backing="qwen") == 4096
    assert value(observer, "deepwell_engine_prefix_reused_tokens_total", backing="qwen") == 128


def test_cache_tiers_show_their_counters_and_a_hit_ratio_when_they_count_misses() -> None:
    observer = PrometheusObserver()
    observer.publish_engines({"qwen": health()})

    assert value(observer, "deepwell_cache_entries", backing="qwen", tier="ram") == 3
    assert value(observer, "deepwell_cache_bytes", backing="qwen", tier="disk") == 8192
    assert value(observer, "deepwell_cache_hits_total", backing="qwen", tier="ram") == 7
    assert value(observer, "deepwell_cache_errors_total", backing="qwen", tier="disk") == 2
    assert value(observer, "deepwell_cache_misses_total", backing="qwen", tier="disk") == 1
    assert value(observer, "deepwell_cache_misses_total", backing="qwen", tier="ram") is None
    assert value(observer, "deepwell_cache_hit_ratio", backing="qwen", tier="disk") == 0.75
    assert value(observer, "deepwell_cache_hit_ratio", backing="qwen", tier="ram") is None


def test_a_publish_replaces_the_last_one() -> None:
    observer = PrometheusObserver()
    observer.publish_engines({"qwen": health()})
    observer.publish_engines({"other": health(cache={})})

    assert value(observer, "deepwell_engine_ready", backing="qwen") is None
    assert value(observer, "deepwell_engine_ready", backing="other") == 1
    assert value(observer, "deepwell_cache_hits_total", backing="other", tier="ram") is None


def test_the_output_parses() -> None:
    observer = PrometheusObserver()
    observer.publish_engines({"qwen": health()})

    text = generate_latest(observer.registry).decode()
    found = {family.name: family for family in text_string_to_metric_families(text)}

    assert found["deepwell_cache_hits"].type == "counter"
    assert found["deepwell_cache_hit_ratio"].type == "gauge"
    assert {s.labels["tier"] for s in found["deepwell_cache_entries"].samples} == {"ram", "disk"}
