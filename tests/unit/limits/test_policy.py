"""The concurrency an account is allowed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from deepwell.limits.policy import ALL_MODELS, configured, for_balance
from deepwell.settings import Settings

pytestmark = pytest.mark.usefixtures("clean_env")

FLASH = "deepseek-v4-flash"
PRO = "deepseek-v4-pro"


def test_the_default_is_the_engine_sequences_times_the_factor() -> None:
    settings = Settings.model_validate({"engine": {"n_seq_max": 4}})
    assert configured(settings, FLASH) == 16


def test_configuration_then_overrides_win() -> None:
    settings = Settings.model_validate(
        {"limits": {"concurrency": {"per_account": 10, "per_model": {PRO: 3}}}}
    )
    assert configured(settings, FLASH) == 10
    assert configured(settings, PRO) == 3
    assert configured(settings, PRO, {ALL_MODELS: 7}) == 7
    assert configured(settings, PRO, {ALL_MODELS: 7, PRO: 2}) == 2


def test_a_low_balance_lowers_the_limit_in_proportion() -> None:
    settings = Settings()
    assert for_balance(settings, 40, None) == 40
    assert for_balance(settings, 40, Decimal("5")) == 40
    assert for_balance(settings, 40, Decimal("0.5")) == 20
    assert for_balance(settings, 40, Decimal("0")) == 1
    assert for_balance(settings, 40, Decimal("-1")) == 1
