"""Prices: the cost formula, the worst case a hold covers, and time windows."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

import pytest

from deepwell.billing.prices import PriceBook, PriceQuote, from_nanos, to_nanos
from deepwell.settings import Prices, PriceWindow, PublicModel

FLASH = PriceQuote(hit=Decimal("0.0028"), miss=Decimal("0.14"), output=Decimal("0.28"))
PRO = PriceQuote(hit=Decimal("0.003625"), miss=Decimal("0.435"), output=Decimal("0.87"))
HALF = Prices(
    cache_hit_input=Decimal("0.0014"), cache_miss_input=Decimal("0.07"), output=Decimal("0.14")
)


def model(*windows: PriceWindow) -> PublicModel:
    prices = Prices(cache_hit_input=FLASH.hit, cache_miss_input=FLASH.miss, output=FLASH.output)
    return PublicModel(prices=prices, price_windows=list(windows))


def test_cost_is_the_documented_formula() -> None:
    assert FLASH.cost(hit=1_000_000, miss=0, output=0) == Decimal("0.0028")
    assert FLASH.cost(hit=640, miss=12, output=50) == Decimal("0.000017472")
    # 3.625e-9 per hit token: half-even to the ledger's nanos.
    assert PRO.cost(hit=1, miss=0, output=0) == Decimal("0.000000004")
    assert PRO.cost(hit=2, miss=0, output=0) == Decimal("0.000000007")
    assert PRO.cost(hit=0, miss=0, output=0) == Decimal(0)


def test_the_worst_case_covers_every_outcome() -> None:
    worst = PRO.worst_case(prompt=1000, max_output=200)
    assert worst == Decimal("0.000609")
    for hit in (0, 500, 1000):
        for output in (0, 100, 200):
            assert PRO.cost(hit=hit, miss=1000 - hit, output=output) <= worst
    odd = PriceQuote(hit=Decimal("1"), miss=Decimal("0.5"), output=Decimal(0))
    assert odd.worst_case(prompt=3, max_output=0) == Decimal("0.000003")


def test_nanos_round_trip_and_refuse_what_they_cannot_keep() -> None:
    assert to_nanos(Decimal("10.5")) == 10_500_000_000
    assert from_nanos(1) == Decimal("0.000000001")
    assert from_nanos(to_nanos(Decimal("0.123456789"))) == Decimal("0.123456789")
    with pytest.raises(ValueError, match="decimal places"):
        to_nanos(Decimal("0.0000000001"))


def test_base_prices_outside_every_window() -> None:
    book = PriceBook({"m": model()})
    quote = book.quote("m", datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert quote == FLASH


def test_a_window_within_a_day() -> None:
    window = PriceWindow(start=time(2), end=time(6, 30), prices=HALF)
    book = PriceBook({"m": model(window)})
    assert book.quote("m", datetime(2026, 12, 1, 2, tzinfo=UTC)).window == "off-peak"
    assert book.quote("m", datetime(2026, 12, 1, 6, 29, tzinfo=UTC)).miss == Decimal("0.07")
    assert book.quote("m", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)).window is None
    assert book.quote("m", datetime(2026, 12, 1, 1, 59, tzinfo=UTC)).window is None


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    # Off-peak from 16:30 to 00:30 UTC, starting on weekdays only (0 = Monday).
    window = PriceWindow(start=time(16, 30), end=time(0, 30), weekdays=[0, 1, 2, 3, 4], prices=HALF)
    book = PriceBook({"m": model(window)})
    friday_night = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    saturday_early = datetime(2026, 12, 5, 0, 15, tzinfo=UTC)
    saturday_night = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    sunday_early = datetime(2026, 12, 6, 0, 15, tzinfo=UTC)
    monday_early = datetime(2026, 12, 7, 0, 15, tzinfo=UTC)
    assert book.quote("m", friday_night).window == "off-peak"
    assert book.quote("m", saturday_early).window == "off-peak"
    assert book.quote("m", saturday_night).window is None
    assert book.quote("m", sunday_early).window is None
    assert book.quote("m", monday_early).window is None


def test_the_first_matching_window_wins() -> None:
    first = PriceWindow(name="night", start=time(0), end=time(8), prices=HALF)
    second = PriceWindow(name="early", start=time(4), end=time(10), prices=HALF)
    book = PriceBook({"m": model(first, second)})
    assert book.quote("m", datetime(2026, 12, 1, 5, tzinfo=UTC)).window == "night"
    assert book.quote("m", datetime(2026, 12, 1, 9, tzinfo=UTC)).window == "early"
