"""What a request costs: the price table with its time windows, and the cost formula.

Amounts are ``Decimal`` throughout and are kept to :data:`QUANTUM` (a billionth of the
currency unit); the database stores them as whole numbers of that quantum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from deepwell.settings import Prices, PriceWindow, PublicModel

QUANTUM = Decimal("1e-9")
"""The smallest amount the ledger keeps."""

PER_TOKENS = Decimal(1_000_000)
"""Prices are per this many tokens."""


def to_nanos(amount: Decimal) -> int:
    """``amount`` as a whole number of :data:`QUANTUM`; it must be exact to the quantum."""
    scaled = amount / QUANTUM
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount:f} has more decimal places than the ledger keeps (9)")
    return int(scaled)


def from_nanos(nanos: int) -> Decimal:
    return (Decimal(nanos) * QUANTUM).quantize(QUANTUM)


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """The prices a request is charged at, fixed at admission, per million tokens."""

    hit: Decimal
    miss: Decimal
    output: Decimal
    window: str | None = None

    def cost(self, *, hit: int, miss: int, output: int) -> Decimal:
        """``(hit * hit price + miss * miss price + output * output price) / 1e6``,
        rounded half-even to the ledger's quantum."""
        total = hit * self.hit + miss * self.miss + output * self.output
        return (total / PER_TOKENS).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)

    def worst_case(self, *, prompt: int, max_output: int) -> Decimal:
        """The most a request can cost: every prompt token a miss (or a hit, if a hit
        were dearer) and ``max_output`` tokens of output, rounded up."""
        total = prompt * max(self.hit, self.miss) + max_output * self.output
        return (total / PER_TOKENS).quantize(QUANTUM, rounding=ROUND_CEILING)


class PriceBook:
    """The prices of every public model id, with their windows."""

    def __init__(self, models: Mapping[str, PublicModel]) -> None:
        self._models = dict(models)

    def quote(self, model: str, at: datetime) -> PriceQuote:
        """The prices of ``model`` at the UTC instant ``at``: the first window that holds
        it, else the base prices."""
        spec = self._models[model]
        for window in spec.price_windows:
            if _inside(window, at):
                return _quote(window.prices, window.name)
        return _quote(spec.prices, None)


def _quote(prices: Prices, window: str | None) -> PriceQuote:
    return PriceQuote(prices.cache_hit_input, prices.cache_miss_input, prices.output, window)


def _inside(window: PriceWindow, at: datetime) -> bool:
    """Whether ``at`` falls in ``window``; a window past midnight belongs to the
    weekday it started on."""
    now = at.time().replace(tzinfo=None)
    if window.start < window.end:
        return at.weekday() in window.weekdays and window.start <= now < window.end
    if now >= window.start:
        return at.weekday() in window.weekdays
    started = (at.weekday() - 1) % 7
    return now < window.end and started in window.weekdays
