"""What every command shares: settings, the database, and output on stdout/stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeAlias, TypeVar

from rich.console import Console

from deepwell.settings import Settings
from deepwell.store.db import Database, open_database

T = TypeVar("T")
Handler = Callable[[argparse.Namespace], None]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandFailed(Exception):
    """A command could not do what was asked; the message is shown on stderr."""


def json_flag() -> argparse.ArgumentParser:
    """A parent parser adding ``--json``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment and ``config``; ``overrides`` that are None are unset."""
    kwargs = {name: value for name, value in overrides.items() if value is not None}
    if config is not None:
        if not config.is_file():
            raise CommandFailed(f"config file not found: {config}")
        kwargs["config_file"] = config
    return Settings(**kwargs)


def with_database(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Open (and migrate) the database, run ``action`` on it, close it."""

    async def run() -> T:
        async with await open_database(settings.database) as database:
            return await action(database)

    return asyncio.run(run())


PIPE_WIDTH = 120
"""Columns of output that goes to a file or a pipe rather than a terminal."""


def stdout() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def warn(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"warning: {message}", markup=False)


def fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False).print(f"error: {message}", markup=False)
    raise SystemExit(1)


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
