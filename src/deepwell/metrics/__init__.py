"""Prometheus metrics: what the gateway observes, and the engines' figures at scrape time."""

from deepwell.metrics.prometheus import PrometheusObserver

__all__ = ["PrometheusObserver"]
