"""``StatusBoard``: the server's recent health, recorded in memory for ``/status``.

It hears two things. As an ``Observer`` of the gateway, every refusal: a 503 for a full
queue (``overloaded``) opens or extends an overload incident of that model's engine. And
``sample``, the engines' health, read every few seconds: each sample counts towards the
minute's uptime, a state other than ``ready`` opens an incident that lasts until the
engine is ready again, and a grown ``restarts`` count is a restart even if no sample saw
the engine restarting. Nothing recorded names an account, a key or a prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from deepwell.billing.ledger import Charge
from deepwell.core.observer import NullObserver, Observer, Refusal
from deepwell.engine.base import Engine, EngineHealth

IncidentKind = Literal["restart", "outage", "overload"]
Overall = Literal["operational", "degraded", "down"]

MINUTE = 60.0
RECENT_MINUTES = 60
"""How many of the last minutes each component shows one by one."""


@dataclass(slots=True)
class Incident:
    """A period in which a backing model was not fully serving. ``ended_at`` is None while
    it goes on; ``refusals`` counts the 503s of an overload."""

    kind: IncidentKind
    backing: str
    started_at: float
    ended_at: float | None = None
    refusals: int = 0


@dataclass(frozen=True, slots=True)
class Component:
    """A backing model as the status page shows it."""

    backing: str
    models: tuple[str, ...]
    state: str
    uptime: float | None
    # The last RECENT_MINUTES: up (1.0), partly or down (0.0), oldest first; None: no sample.
    minutes: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: Overall
    components: tuple[Component, ...]
    incidents: tuple[Incident, ...]
    window_s: float


@dataclass(slots=True)
class _Engine:
    state: str = "ready"
    restarts: int | None = None
    open: Incident | None = None
    # (minute, samples ready, samples in all), oldest first.
    minutes: deque[list[int]] = field(default_factory=deque)


class StatusBoard(NullObserver):
    """Engine states, restarts and overloads of the last ``window_s`` seconds.

    ``models`` maps each public model id to its backing model. Every method runs on the
    event loop, is quick and never raises: the observer methods run in the gateway's path.
    An overload ends once ``overload_quiet_s`` pass without a 503. At most
    ``max_incidents`` are kept, the newest.
    """

    def __init__(
        self,
        models: Mapping[str, str],
        *,
        window_s: float = 24 * 3600.0,
        overload_quiet_s: float = 60.0,
        max_incidents: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backing = dict(models)
        self._window_s = window_s
        self._quiet_s = overload_quiet_s
        self._clock = clock
        self._engines: dict[str, _Engine] = {
            name: _Engine() for name in sorted(set(models.values()))
        }
        self._overloads: dict[str, Incident] = {}
        self._incidents: deque[Incident] = deque(maxlen=max_incidents)

    # -- what the gateway reports: overloads (the other calls are NullObserver's) --

    def refused(self, model: str, why: str) -> None:
        if why != "overloaded":
            return
        now = self._clock()
        backing = self._backing.get(model, model)
        current = self._overloads.get(backing)
        if current is None or now - self._last(current) > self._quiet_s:
            current = Incident("overload", backing, now)
            self._overloads[backing] = current
            self._incidents.append(current)
        current.refusals += 1
        current.ended_at = now

    # -- what the engines report --

    def sample(self, health: Mapping[str, EngineHealth]) -> None:
        """Record each engine's health as of now."""
        now = self._clock()
        for name, figures in health.items():
            engine = self._engines.setdefault(name, _Engine())
            self._count(engine, now, ready=figures.state == "ready")
            self._follow(name, engine, figures, now)
            engine.state = figures.state

    def _count(self, engine: _Engine, now: float, *, ready: bool) -> None:
        minute = int(now // MINUTE)
        if not engine.minutes or engine.minutes[-1][0] != minute:
            engine.minutes.append([minute, 0, 0])
        engine.minutes[-1][1] += ready
        engine.minutes[-1][2] += 1
        oldest = minute - int(self._window_s // MINUTE)
        while engine.minutes and engine.minutes[0][0] <= oldest:
            engine.minutes.popleft()

    def _follow(self, name: str, engine: _Engine, figures: EngineHealth, now: float) -> None:
        restarted = engine.restarts is not None and figures.restarts > engine.restarts
        engine.restarts = figures.restarts
        if figures.state != "ready":
            kind: IncidentKind = "outage" if figures.state == "failed" else "restart"
            if engine.open is None or engine.open.kind != kind:
                self._close(engine, now)
                engine.open = Incident(kind, name, now)
                self._incidents.append(engine.open)
            return
        if engine.open is not None:
            self._close(engine, now)
        elif restarted:
            self._incidents.append(Incident("restart", name, now, now))

    @staticmethod
    def _close(engine: _Engine, now: float) -> None:
        if engine.open is not None:
            engine.open.ended_at = now
            engine.open = None

    # -- what /status shows --

    def report(self) -> StatusReport:
        """The current state, uptime and incidents; the incidents newest first."""
        now = self._clock()
        since = now - self._window_s
        incidents = tuple(
            self._shown(incident, now)
            for incident in reversed(self._incidents)
            if incident.ended_at is None or incident.ended_at >= since
        )
        components = tuple(
            self._component(name, engine, now) for name, engine in self._engines.items()
        )
        return StatusReport(
            self._overall(components, incidents), components, incidents, self._window_s
        )

    def _shown(self, incident: Incident, now: float) -> Incident:
        """A copy; an overload still within its quiet time is shown as going on."""
        ended = incident.ended_at
        if incident.kind == "overload" and ended is not None and now - ended <= self._quiet_s:
            ended = None
        return Incident(
            incident.kind, incident.backing, incident.started_at, ended, incident.refusals
        )

    def _component(self, name: str, engine: _Engine, now: float) -> Component:
        models = tuple(sorted(m for m, b in self._backing.items() if b == name))
        counts = {minute: (ready, total) for minute, ready, total in engine.minutes}
        last = int(now // MINUTE)
        span = min(RECENT_MINUTES, int(self._window_s // MINUTE))
        minutes = tuple(
            counts[m][0] / counts[m][1] if m in counts else None
            for m in range(last - span + 1, last + 1)
        )
        total = sum(t for _, _, t in engine.minutes)
        uptime = sum(r for _, r, _ in engine.minutes) / total if total else None
        return Component(name, models, engine.state, uptime, minutes)

    @staticmethod
    def _overall(components: tuple[Component, ...], incidents: tuple[Incident, ...]) -> Overall:
        if any(c.state == "failed" for c in components):
            return "down"
        if any(c.state != "ready" for c in components) or any(
            i.ended_at is None for i in incidents
        ):
            return "degraded"
        return "operational"

    @staticmethod
    def _last(incident: Incident) -> float:
        return incident.ended_at if incident.ended_at is not None else incident.started_at


@asynccontextmanager
async def watching(
    board: StatusBoard, engines: Mapping[str, Engine], *, every_s: float = 5.0
) -> AsyncIterator[None]:
    """Sample ``engines`` into ``board`` every ``every_s`` seconds while the block runs."""

    async def sample() -> None:
        while True:
            with contextlib.suppress(Exception):
                board.sample({name: await e.health() for name, e in engines.items()})
            await asyncio.sleep(every_s)

    task = asyncio.create_task(sample(), name="deepwell-status")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Tee:
    """An ``Observer`` that tells each of ``observers`` (the ones not None) everything."""

    def __init__(self, *observers: Observer | None) -> None:
        self._all = tuple(o for o in observers if o is not None)

    def refused(self, model: str, why: Refusal) -> None:
        for observer in self._all:
            observer.refused(model, why)

    def queued(self, backing: str, waiting: int) -> None:
        for observer in self._all:
            observer.queued(backing, waiting)

    def dispatched(self, backing: str, waiting: int, waited_s: float) -> None:
        for observer in self._all:
            observer.dispatched(backing, waiting, waited_s)

    def first_token(self, model: str, seconds: float) -> None:
        for observer in self._all:
            observer.first_token(model, seconds)

    def next_token(self, model: str, seconds: float) -> None:
        for observer in self._all:
            observer.next_token(model, seconds)

    def settled(self, charge: Charge) -> None:
        for observer in self._all:
            observer.settled(charge)
