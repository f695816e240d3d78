"""The concurrency an account is allowed on a public model, from configuration, its own
overrides and its balance. Pure functions: the gateway and the CLI agree on them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from deepwell.settings import Settings

ALL_MODELS = "*"
"""The model name of an override that applies to every model of an account."""


def configured(settings: Settings, model: str, overrides: Mapping[str, int] | None = None) -> int:
    """The limit of ``model`` for an account with ``overrides`` (model id, or
    ``ALL_MODELS``, to limit): the account's own, else the model's, else the default."""
    found = overrides or {}
    if model in found:
        return found[model]
    if ALL_MODELS in found:
        return found[ALL_MODELS]
    limits = settings.limits.concurrency
    if model in limits.per_model:
        return limits.per_model[model]
    if limits.per_account is not None:
        return limits.per_account
    return settings.engine.n_seq_max * limits.capacity_factor


def for_balance(settings: Settings, limit: int, available: Decimal | None) -> int:
    """``limit`` lowered for an account whose ``available`` balance is low: in proportion
    to it below ``low_balance``, never under ``low_balance_floor`` (nor over ``limit``).
    None (billing off) leaves it as it is."""
    limits = settings.limits.concurrency
    if available is None or limits.low_balance <= 0 or available >= limits.low_balance:
        return limit
    share = max(available, Decimal(0)) / limits.low_balance
    return min(limit, max(limits.low_balance_floor, math.floor(limit * share)))
