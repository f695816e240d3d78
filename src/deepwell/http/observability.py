"""Request logs and, when enabled, Prometheus metrics at ``/metrics``."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI

from deepwell.http.admin import admin_only
from deepwell.http.requestlog import RequestLog
from deepwell.http.routes import metrics
from deepwell.metrics import PrometheusObserver
from deepwell.settings import Settings

log = logging.getLogger(__name__)


def install(app: FastAPI, settings: Settings) -> PrometheusObserver | None:
    """Add the request log to ``app`` and, with ``metrics.enabled``, ``GET /metrics``
    (behind the admin token with ``metrics.require_admin``). Returns the observer the
    gateway should report to (``Services.observer``), or None when metrics are off."""
    observer = PrometheusObserver() if settings.metrics.enabled else None
    app.add_middleware(RequestLog, observer=observer)
    if observer is not None:
        guard = []
        if settings.metrics.require_admin:
            if not settings.admin_token or not settings.admin_token.get_secret_value():
                log.warning("metrics.require_admin is set but admin_token is not: /metrics is 401")
            guard = [Depends(admin_only(settings.admin_token))]
        app.include_router(metrics.router, dependencies=guard)
    return observer
