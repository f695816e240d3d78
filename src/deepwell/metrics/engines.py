"""The engines' own figures as metrics, read from their last published ``EngineHealth``.

These are snapshots: the engine keeps the counts (sequences, KV cells, cache tiers) and
``/metrics`` publishes them just before it renders, so they cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from deepwell.engine.base import EngineHealth

Family = type[CounterMetricFamily] | type[GaugeMetricFamily]

_ENGINE: tuple[tuple[str, Family, str, Callable[[EngineHealth], float]], ...] = (
    (
        "deepwell_engine_ready",
        GaugeMetricFamily,
        "1 while the engine is ready, 0 while it restarts or once it has failed.",
        lambda h: float(h.state == "ready"),
    ),
    (
        "deepwell_engine_sequences_busy",
        GaugeMetricFamily,
        "Sequences the engine is running.",
        lambda h: h.sequences_busy,
    ),
    (
        "deepwell_engine_sequences",
        GaugeMetricFamily,
        "Sequences the engine can run at once.",
        lambda h: h.sequences_total,
    ),
    (
        "deepwell_engine_queue_length",
        GaugeMetricFamily,
        "Requests waiting inside the engine for a sequence.",
        lambda h: h.queue_length,
    ),
    (
        "deepwell_engine_kv_cells_used",
        GaugeMetricFamily,
        "KV cache cells in use.",
        lambda h: h.kv_used,
    ),
    (
        "deepwell_engine_kv_cells",
        GaugeMetricFamily,
        "KV cache cells in all.",
        lambda h: h.kv_total,
    ),
    (
        "deepwell_engine_restarts",
        CounterMetricFamily,
        "Times the engine was rebuilt after an internal failure.",
        lambda h: h.restarts,
    ),
    (
        "deepwell_engine_decode_steps",
        CounterMetricFamily,
        "Decode steps (one llama_decode of a batch) since the engine (re)started.",
        lambda h: h.decode_steps,
    ),
    (
        "deepwell_engine_decode_seconds",
        CounterMetricFamily,
        "Seconds spent in decode steps since the engine (re)started (over the steps: the mean).",
        lambda h: h.decode_seconds,
    ),
    (
        "deepwell_engine_draft_tokens",
        CounterMetricFamily,
        "Tokens guessed by prompt-lookup speculation since the engine (re)started.",
        lambda h: h.draft_tokens,
    ),
    (
        "deepwell_engine_draft_accepted_tokens",
        CounterMetricFamily,
        "Guessed tokens the samplers took (each one a decode step saved).",
        lambda h: h.draft_accepted,
    ),
    (
        "deepwell_engine_prefix_reused_tokens",
        CounterMetricFamily,
        "Prompt tokens whose KV was reused instead of read again, since the engine started.",
        lambda h: h.prefix_reused_tokens,
    ),
)

# The counters of a cache tier (cache/tiers.py ``TierStats``), by their key in
# ``EngineHealth.cache``. A key a tier does not report is left out.
_TIER: tuple[tuple[str, Family, str], ...] = (
    ("entries", GaugeMetricFamily, "Entries the cache tier holds."),
    ("bytes", GaugeMetricFamily, "Bytes the cache tier holds."),
    ("hits", CounterMetricFamily, "Lookups the cache tier answered."),
    ("misses", CounterMetricFamily, "Lookups the cache tier could not answer."),
    ("evictions", CounterMetricFamily, "Entries the cache tier dropped to make room."),
    ("errors", CounterMetricFamily, "Entries that failed a check when read, and were removed."),
)


class EngineFigures:
    """A Prometheus collector of the last ``EngineHealth`` published per backing model."""

    def __init__(self) -> None:
        self._health: dict[str, EngineHealth] = {}

    def publish(self, health: Mapping[str, EngineHealth]) -> None:
        """Replace what the next scrape shows; an engine left out is no longer shown."""
        self._health = dict(health)

    def collect(self) -> Iterator[Metric]:
        yield from _engine_families(self._health)
        yield from _tier_families(self._health)


def _engine_families(health: Mapping[str, EngineHealth]) -> Iterator[Metric]:
    for name, family, text, read in _ENGINE:
        metric = family(name, text, labels=["backing"])
        for backing, figures in sorted(health.items()):
            metric.add_metric([backing], read(figures))
        yield metric


def _tier_families(health: Mapping[str, EngineHealth]) -> Iterator[Metric]:
    labels = ["backing", "tier"]
    for key, family, text in _TIER:
        metric = family(f"deepwell_cache_{key}", text, labels=labels)
        for (backing, tier), stats in _tiers(health):
            if key in stats:
                metric.add_metric([backing, tier], stats[key])
        yield metric
    ratio = GaugeMetricFamily(
        "deepwell_cache_hit_ratio",
        "hits / (hits + misses) of a cache tier, for tiers that count their misses.",
        labels=labels,
    )
    for (backing, tier), stats in _tiers(health):
        looked_up = stats.get("hits", 0) + stats.get("misses", 0)
        if "misses" in stats and looked_up > 0:
            ratio.add_metric([backing, tier], stats.get("hits", 0) / looked_up)
    yield ratio


def _tiers(health: Mapping[str, EngineHealth]) -> Iterator[tuple[tuple[str, str], dict[str, int]]]:
    for backing, figures in sorted(health.items()):
        for tier, stats in sorted(figures.cache.items()):
            yield (backing, tier), stats
