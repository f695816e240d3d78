"""What route handlers reach through the app: the services built by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request
from pydantic import SecretStr

from deepwell.billing.balances import BalanceInfo
from deepwell.console import AccountAdmin
from deepwell.core.gateway import Gateway
from deepwell.core.observer import Trace
from deepwell.engine.base import Engine
from deepwell.metrics import PrometheusObserver
from deepwell.models.registry import ModelRegistry
from deepwell.settings import AnthropicSettings, RequestLimits
from deepwell.status import StatusBoard
from deepwell.vocabulary import Caller


class KeyLookup(Protocol):
    async def authenticate(self, key: str) -> Caller | None: ...


class BalanceLookup(Protocol):
    async def of(self, account_id: int) -> list[BalanceInfo]: ...


@dataclass(slots=True)
class Services:
    registry: ModelRegistry
    gateway: Gateway
    engines: dict[str, Engine]
    keys: KeyLookup
    balances: BalanceLookup
    # Whether requests are charged (billing.enabled), and in which currency.
    charging: bool
    currency: str
    limits: RequestLimits = field(default_factory=RequestLimits)
    # Prometheus metrics; None when ``metrics.enabled`` is off.
    observer: PrometheusObserver | None = None
    # With ``private_details``, ``/health`` shows its details to the admin token only.
    admin_token: SecretStr | None = None
    private_details: bool = False
    anthropic: AnthropicSettings = field(default_factory=AnthropicSettings)
    # The admin API's and the console's accounts, keys, money and usage; None: not served.
    accounts: AccountAdmin | None = None
    # What ``/status`` shows; None: not recorded.
    status: StatusBoard | None = None


def services(request: Request) -> Services:
    state: Services = request.app.state.services
    return state


def trace(request: Request) -> Trace | None:
    """The request's ``Trace``, which the request-log middleware put in its state."""
    found = getattr(request.state, "trace", None)
    return found if isinstance(found, Trace) else None
