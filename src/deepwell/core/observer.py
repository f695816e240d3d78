"""What the gateway reports as requests pass through it, for metrics and request logs.

The gateway calls an ``Observer`` at each stage of a request; ``NullObserver`` ignores
everything. Implementations must be quick and must not raise: they run on the event
loop, some of them once per generated token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from deepwell.billing.ledger import Charge

Refusal = Literal["balance", "rate_limit", "overloaded", "shutting_down"]


@dataclass(slots=True)
class Trace:
    """What one request's log line says, filled in as the request goes. The HTTP layer
    makes one per request (``request_id`` is also its ``x-request-id``) and the gateway
    fills in the rest; ``charge`` is set once the request is settled."""

    request_id: str
    account_id: int | None = None
    model: str | None = None
    queued_ms: int | None = None
    charge: Charge | None = None


class Observer(Protocol):
    def refused(self, model: str, why: Refusal) -> None:
        """A request was refused before it was admitted (402, 429 or 503)."""

    def queued(self, backing: str, waiting: int) -> None:
        """A request entered ``backing``'s queue, which now has ``waiting`` requests."""

    def dispatched(self, backing: str, waiting: int, waited_s: float) -> None:
        """A request left the queue for its engine after ``waited_s`` seconds."""

    def first_token(self, model: str, seconds: float) -> None:
        """A request's first output, ``seconds`` after it was admitted."""

    def next_token(self, model: str, seconds: float) -> None:
        """More output, ``seconds`` after the previous piece."""

    def settled(self, charge: Charge) -> None:
        """A request ended and was settled (any ending)."""


class NullObserver:
    """An ``Observer`` that records nothing."""

    def refused(self, model: str, why: Refusal) -> None:
        pass

    def queued(self, backing: str, waiting: int) -> None:
        pass

    def dispatched(self, backing: str, waiting: int, waited_s: float) -> None:
        pass

    def first_token(self, model: str, seconds: float) -> None:
        pass

    def next_token(self, model: str, seconds: float) -> None:
        pass

    def settled(self, charge: Charge) -> None:
        pass
