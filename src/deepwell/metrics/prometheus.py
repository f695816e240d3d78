"""``PrometheusObserver``: the gateway's observer, counting into Prometheus metrics.

Every metric lives on the observer's own ``CollectorRegistry``, never the process-wide
one, so any number of apps can run in one process (as tests do). Label values are
public model ids, backing model names, finish and refusal reasons, route templates,
methods and statuses: never an account, a key or anything of a prompt.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from deepwell.billing.ledger import Charge
from deepwell.engine.base import EngineHealth
from deepwell.limits.queue import QueueStats
from deepwell.metrics.engines import EngineFigures

# Seconds: from a few milliseconds to tens of seconds (a first token behind a long
# prompt); the queue's go up to its default wait limit of ten minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)
QUEUE_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""HTTP methods counted by name; any other is counted as ``other`` (clients choose it)."""


class PrometheusObserver:
    """An ``Observer`` (``core.observer``) that records into ``registry``.

    The observer methods are called on the event loop, some once per token: each is
    one or two updates of a labelled child, and none raises. ``publish_engines`` and
    ``publish_queues`` replace the scrape-time figures; ``/metrics`` calls them just
    before it renders ``registry``.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        on = self.registry
        model, backing = ["model"], ["backing"]
        self._requests = Counter(
            "deepwell_requests",
            "Requests settled, by public model and finish reason.",
            ["model", "finish_reason"],
            registry=on,
        )
        self._refusals = Counter(
            "deepwell_refusals",
            "Requests refused before admission (402, 429, 503), by public model and reason.",
            ["model", "reason"],
            registry=on,
        )
        self._ttft = Histogram(
            "deepwell_time_to_first_token_seconds",
            "Seconds from admission to a request's first output.",
            model,
            registry=on,
            buckets=LATENCY_BUCKETS,
        )
        self._itl = Histogram(
            "deepwell_inter_token_latency_seconds",
            "Seconds between one piece of a request's output and the next.",
            model,
            registry=on,
            buckets=TOKEN_GAP_BUCKETS,
        )
        self._prompt = Counter(
            "deepwell_prompt_tokens",
            "Prompt tokens settled, by public model and kind (cache hit or miss).",
            ["model", "kind"],
            registry=on,
        )
        self._output = Counter(
            "deepwell_output_tokens", "Output tokens settled.", model, registry=on
        )
        self._reasoning = Counter(
            "deepwell_reasoning_tokens",
            "Reasoning tokens settled (part of the output tokens).",
            model,
            registry=on,
        )
        self._cost = Counter(
            "deepwell_cost",
            "Cost settled, in units of the currency.",
            ["model", "currency"],
            registry=on,
        )
        self._waiting = Gauge(
            "deepwell_queue_waiting", "Requests waiting in the server queue.", backing, registry=on
        )
        self._waited = Histogram(
            "deepwell_queue_wait_seconds",
            "Seconds a request waited in the server queue before its engine took it.",
            backing,
            registry=on,
            buckets=QUEUE_BUCKETS,
        )
        self._running = Gauge(
            "deepwell_queue_running",
            "Requests the server queue has let through to the engine.",
            backing,
            registry=on,
        )
        self._waiting_tokens = Gauge(
            "deepwell_queue_waiting_tokens",
            "Prompt tokens of the requests waiting in the server queue.",
            backing,
            registry=on,
        )
        self._capacity = Gauge(
            "deepwell_queue_capacity",
            "Requests the server queue lets run at once.",
            backing,
            registry=on,
        )
        self._http = Counter(
            "deepwell_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=on,
        )
        self._engines = EngineFigures()
        on.register(self._engines)

    def refused(self, model: str, why: str) -> None:
        self._refusals.labels(model, why).inc()

    def queued(self, backing: str, waiting: int) -> None:
        self._waiting.labels(backing).set(waiting)

    def dispatched(self, backing: str, waiting: int, waited_s: float) -> None:
        self._waiting.labels(backing).set(waiting)
        self._waited.labels(backing).observe(waited_s)

    def first_token(self, model: str, seconds: float) -> None:
        self._ttft.labels(model).observe(seconds)

    def next_token(self, model: str, seconds: float) -> None:
        self._itl.labels(model).observe(seconds)

    def settled(self, charge: Charge) -> None:
        model = charge.model
        self._requests.labels(model, charge.finish_reason).inc()
        self._prompt.labels(model, "hit").inc(max(charge.hit_tokens, 0))
        self._prompt.labels(model, "miss").inc(max(charge.miss_tokens, 0))
        self._output.labels(model).inc(max(charge.output_tokens, 0))
        self._reasoning.labels(model).inc(max(charge.reasoning_tokens, 0))
        self._cost.labels(model, charge.currency).inc(max(float(charge.cost), 0.0))

    def http_request(self, route: str, method: str, status: int) -> None:
        """One HTTP request answered: ``route`` is its template, never the raw path."""
        verb = method if method in METHODS else "other"
        self._http.labels(route, verb, str(status)).inc()

    def publish_engines(self, health: Mapping[str, EngineHealth]) -> None:
        """The engines' health by backing model, shown until the next publish."""
        self._engines.publish(health)

    def publish_queues(self, stats: Mapping[str, QueueStats]) -> None:
        """The server queues' figures by backing model."""
        for backing, figures in stats.items():
            self._waiting.labels(backing).set(figures.waiting)
            self._running.labels(backing).set(figures.running)
            self._waiting_tokens.labels(backing).set(figures.waiting_tokens)
            self._capacity.labels(backing).set(figures.capacity)
