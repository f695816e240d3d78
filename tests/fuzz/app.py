"""The app the fuzz tests drive in-process: ``create_app`` on the fake engine (which also
serves FIM), with the real key store, ledger and balances on SQLite in a data directory of
its own, so every route sees the state a running server would."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI

from deepwell.accounts.keys import KeyStore
from deepwell.app import create_app
from deepwell.billing.balances import Balances
from deepwell.cli.common import with_database
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings
from deepwell.store.db import Database

ACCOUNT = "fuzz"
FIM_TOKENS = {"<|fim_prefix|>": 1, "<|fim_suffix|>": 2, "<|fim_middle|>": 3}


class FimEngine(FakeEngine):
    """The fake engine, with the default model's FIM markers as single special tokens, so
    FIM requests get as far as chat ones."""

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        if special and text in FIM_TOKENS:
            return [FIM_TOKENS[text]]
        return super().tokenize(text, special=special)


def settings_for(data_dir: Path) -> Settings:
    """The defaults on ``data_dir`` (no ``DEEPWELL_*`` of the shell counts)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("DEEPWELL_"):
                patch.delenv(name)
        return Settings(data_dir=data_dir)


def build_app(settings: Settings) -> FastAPI:
    return create_app(settings, engines={DEFAULT_MODEL: FimEngine(context_length=4096)})


def funded_key(settings: Settings) -> str:
    """A new key of ``ACCOUNT``, which holds enough for every request of a run."""

    async def create(database: Database) -> str:
        created = await KeyStore(database).create(ACCOUNT)
        currency = settings.billing.currency
        await Balances(database).credit(ACCOUNT, Decimal(1000), currency, granted=False)
        return created.key

    return with_database(settings, create)
