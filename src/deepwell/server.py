"""Running the server process: serve until SIGTERM or Ctrl-C, then drain and exit.

On SIGTERM the gateway refuses new requests (503) and lets the running ones finish for
up to ``drain_timeout_s``, then ends them with an error; every request is settled before
the process exits 0. An engine that fails beyond repair makes the process exit 1, so a
supervisor (systemd, Kubernetes) starts a fresh one.
"""

from __future__ import annotations

import logging
import socket
from types import FrameType
from typing import Any

import uvicorn

from deepwell import logs
from deepwell.app import create_app
from deepwell.http.state import Services
from deepwell.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_MARGIN_S = 5.0
"""How much longer than the drain the server waits for connections before it cuts them."""


class _Server(uvicorn.Server):
    """uvicorn's server, which drains the gateway before it waits for connections."""

    def __init__(self, config: uvicorn.Config, app: Any, drain_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_s = drain_s
        self.fatal: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        """Called (from any thread) when an engine is beyond repair: stop serving."""
        self.fatal = error
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn raises the signal again once it has shut down, so that the process ends
        # by it; a drained shutdown is a clean exit (status 0) instead.
        self._captured_signals.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services: Services | None = getattr(self._app.state, "services", None)
        if services is not None:
            services.gateway.drain(self._drain_s)
        await super().shutdown(sockets)


def run(settings: Settings) -> None:
    """Serve until interrupted; exit 1 if an engine failed beyond repair."""
    logs.configure(settings.log_level, settings.log_format)
    server: _Server | None = None

    def on_fatal(error: BaseException) -> None:
        log.critical("an engine failed and could not be rebuilt: %s", error)
        if server is not None:
            server.fail(error)

    app = create_app(settings, on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # deepwell's logging throughout, and its own line per request (http.requestlog).
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s + SHUTDOWN_MARGIN_S),
    )
    server = _Server(config, app, settings.drain_timeout_s)
    server.run()
    if server.fatal is not None:
        raise SystemExit(1)
