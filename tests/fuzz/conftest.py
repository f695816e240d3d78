"""The app the fuzz tests drive in-process: ``create_app`` on the fake engine, one known
key and a wallet that holds and settles in memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings
from deepwell.vocabulary import Caller
from tests.unit.charges import FakeWallet

KEY = "sk-0123456789abcdef0123456789abcdef"
CALLER = Caller(account_id=1, account="fuzz", key_id="key_0123456789abcdef")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: generated requests, bounded in number and seeded")


FIM_TOKENS = {"<|fim_prefix|>": 1, "<|fim_suffix|>": 2, "<|fim_middle|>": 3}


class FimEngine(FakeEngine):
    """The fake engine, with the default model's FIM markers as single special tokens, so
    FIM requests get as far as chat ones."""

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        if special and text in FIM_TOKENS:
            return [FIM_TOKENS[text]]
        return super().tokenize(text, special=special)


class OneKey:
    async def authenticate(self, key: str) -> Caller | None:
        return CALLER if key == KEY else None


def build_app(data_dir: Path) -> FastAPI:
    """The app on ``data_dir``, configured by the defaults alone (no ``DEEPWELL_*`` of the
    shell counts)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("DEEPWELL_"):
                patch.delenv(name)
        settings = Settings(data_dir=data_dir)
    wallet = FakeWallet()
    return create_app(
        settings,
        engines={DEFAULT_MODEL: FimEngine(context_length=4096)},
        keys=OneKey(),
        wallet=wallet,
        balances=wallet,
    )


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """One app for a module's operations; whoever starts it stops it."""
    return build_app(tmp_path_factory.mktemp("fuzz"))
