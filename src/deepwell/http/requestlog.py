"""One log line per HTTP request, its ``x-request-id``, and its count in the metrics.

``RequestLog`` is plain ASGI: it passes every message through as it comes, so streamed
responses stream. Each request gets a fresh id (a client's own ``x-request-id`` is not
trusted) and a ``Trace`` in ``request.state.trace``, which the gateway fills in. The line
is written once the app is done with the request (after a stream's settlement), its
duration measured to the last body part sent.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepwell.core.observer import Trace
from deepwell.logs import FIELDS
from deepwell.metrics import PrometheusObserver

log = logging.getLogger("deepwell.requests")

PROBES = frozenset({"/health", "/metrics"})
"""Routes logged at DEBUG: they are polled."""
UNMATCHED = "unmatched"
"""The route of a request no route took (a 404): never the raw path."""
HEADER = b"x-request-id"


class RequestLog:
    """ASGI middleware: ``x-request-id``, a ``Trace``, the HTTP metric, one log line."""

    def __init__(
        self,
        app: ASGIApp,
        observer: PrometheusObserver | None = None,
        probes: Collection[str] = PROBES,
    ) -> None:
        self._app = app
        self._observer = observer
        self._probes = probes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        exchange = _Exchange(Trace(str(uuid.uuid4())))
        scope.setdefault("state", {})["trace"] = exchange.trace
        try:
            await self._app(scope, receive, exchange.relay(send))
        finally:
            self._finish(scope, exchange)

    def _finish(self, scope: Scope, exchange: _Exchange) -> None:
        route = route_template(scope)
        method: str = scope["method"]
        status = exchange.status or 500  # none sent: the app raised, and is answered 500
        if self._observer is not None:
            self._observer.http_request(route, method, status)
        ms = round(1000 * ((exchange.ended or time.perf_counter()) - exchange.began))
        fields = line_fields(exchange.trace, method=method, route=route, status=status, ms=ms)
        level = logging.DEBUG if route in self._probes else logging.INFO
        log.log(level, " ".join(f"{k}={v}" for k, v in fields.items()), extra={FIELDS: fields})


@dataclass(slots=True)
class _Exchange:
    """What the middleware sees of one request's response."""

    trace: Trace
    began: float = field(default_factory=time.perf_counter)
    status: int | None = None
    ended: float | None = None

    def relay(self, send: Send) -> Send:
        async def relayed(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                headers = [*message.get("headers", ()), (HEADER, self.trace.request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.ended = time.perf_counter()

        return relayed


def line_fields(
    trace: Trace, *, method: str, route: str, status: int, ms: int
) -> dict[str, object]:
    """A request line's fields, in order; what the gateway did not fill in is left out.
    Nothing here is a key, a prompt or a header."""
    fields: dict[str, object] = {
        "request_id": trace.request_id,
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": ms,
    }
    charge = trace.charge
    if trace.account_id is not None:
        fields["account_id"] = trace.account_id
    if trace.model is not None:
        fields["model"] = trace.model
    if charge is not None:
        fields["finish_reason"] = charge.finish_reason
        fields["prompt_tokens"] = charge.hit_tokens + charge.miss_tokens
        fields["hit_tokens"] = charge.hit_tokens
        fields["miss_tokens"] = charge.miss_tokens
        fields["output_tokens"] = charge.output_tokens
        if charge.ttft_ms is not None:
            fields["ttft_ms"] = charge.ttft_ms
    if trace.queued_ms is not None:
        fields["queue_ms"] = trace.queued_ms
    if charge is not None:
        fields["cost"] = str(charge.cost)
        fields["currency"] = charge.currency
    return fields


def route_template(scope: Scope) -> str:
    """The template of the route that took the request, with its router's prefix
    (``/v1/chat/completions``, ``/items/{item_id}``); ``unmatched`` if none did.

    FastAPI leaves the route as declared, without the prefix it was included under, in
    ``scope["route"]``; the prefix is the part of the path before where the route's
    pattern matches (the shortest such part, so always a prefix of a declared one).
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str) or not isinstance(pattern, re.Pattern):
        return UNMATCHED
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    for start, char in enumerate(path):
        if char == "/" and pattern.match(path[start:]):
            return path[:start] + template
    return template
