"""The ``deepwell`` command line: run the server and manage API keys.

    deepwell serve [--host HOST] [--port PORT] [--config FILE]
    deepwell keys create --account NAME [--name LABEL] [--json] [--config FILE]
    deepwell keys list [--account NAME] [--json] [--config FILE]
    deepwell keys revoke KEY_ID [--json] [--config FILE]

Settings come from ``deepwell.settings.Settings`` (so ``DEEPWELL_DATA_DIR`` and the other
``DEEPWELL_*`` variables apply). With ``--json`` a command writes exactly one JSON
object to stdout. Errors go to stderr and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeAlias, TypeVar

from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from deepwell import __version__
from deepwell.accounts.keys import CreatedKey, KeyInfo, KeyStore
from deepwell.errors import ConfigurationError
from deepwell.settings import Settings
from deepwell.store.db import open_database

T = TypeVar("T")
Handler = Callable[[argparse.Namespace], None]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXAMPLE_MODEL = "deepseek-v4-flash"
"""The model the first-run examples use, when the settings serve it."""


class CommandFailed(Exception):
    """A command could not do what was asked; the message is shown on stderr."""


def main(argv: list[str] | None = None) -> None:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``).

    Returns on success; raises ``SystemExit`` with a non-zero code on failure.
    """
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        handler(args)
    except (
        CommandFailed,
        ConfigurationError,
        ValidationError,
        ValueError,
        OSError,
        SQLAlchemyError,
    ) as exc:
        _fail(str(exc))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``deepwell``; each leaf command sets ``handler``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser = argparse.ArgumentParser(
        prog="deepwell", description="A self-hosted implementation of the DeepSeek API."
    )
    parser.add_argument("--version", action="version", version=f"deepwell {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands, common)
    _add_keys(commands, common)
    return parser


def _add_serve(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the API server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.set_defaults(handler=_serve)


def _add_keys(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    keys = commands.add_parser("keys", help="manage API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON object")

    create = actions.add_parser("create", parents=[common, as_json], help="create a key")
    create.add_argument("--account", required=True, help="owning account (created if new)")
    create.add_argument("--name", help="a label for the key")
    create.set_defaults(handler=_keys_create)

    listing = actions.add_parser("list", parents=[common, as_json], help="list keys")
    listing.add_argument("--account", help="only this account's keys")
    listing.set_defaults(handler=_keys_list)

    revoke = actions.add_parser("revoke", parents=[common, as_json], help="revoke a key")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_...)")
    revoke.set_defaults(handler=_keys_revoke)


# Commands


def _serve(args: argparse.Namespace) -> None:
    settings = _settings(args.config, host=args.host, port=args.port)
    created = _run_with_store(settings, lambda store: store.ensure_default_key())
    if created is not None:
        _announce_default_key(created, settings)
    # Imported here: deepwell.server pulls in the engine and llama.cpp.
    from deepwell.server import run

    run(settings)


def _keys_create(args: argparse.Namespace) -> None:
    settings = _settings(args.config)
    created = _run_with_store(settings, lambda store: store.create(args.account, args.name))
    if args.json:
        _print_json(_created_json(created))
    else:
        _stdout().print(_key_panel(created, "New API key"))


def _keys_list(args: argparse.Namespace) -> None:
    settings = _settings(args.config)
    infos = _run_with_store(settings, lambda store: store.list(args.account))
    if args.json:
        _print_json({"keys": [_info_json(info) for info in infos]})
    elif infos:
        _stdout().print(_keys_table(infos))
    else:
        _stdout().print("No API keys.")


def _keys_revoke(args: argparse.Namespace) -> None:
    settings = _settings(args.config)
    if not _run_with_store(settings, lambda store: store.revoke(args.key_id)):
        raise CommandFailed(f"no API key with id {args.key_id!r}")
    if args.json:
        _print_json({"key_id": args.key_id, "revoked": True})
    else:
        _stdout().print(f"Revoked {args.key_id}.", markup=False, highlight=False)


# Plumbing


def _settings(config: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment and ``config``; ``overrides`` that are None are unset."""
    kwargs = {name: value for name, value in overrides.items() if value is not None}
    if config is not None:
        if not config.is_file():
            raise CommandFailed(f"config file not found: {config}")
        kwargs["config_file"] = config
    return Settings(**kwargs)


def _run_with_store(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Open (and migrate) the database, run ``action`` on its KeyStore, close it."""

    async def run() -> T:
        async with await open_database(settings.database) as database:
            return await action(KeyStore(database))

    return asyncio.run(run())


def _stdout() -> Console:
    return Console(highlight=False)


def _fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False).print(f"error: {message}", markup=False)
    raise SystemExit(1)


def _print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _created_json(created: CreatedKey) -> dict[str, Any]:
    return {
        "key": created.key,
        "key_id": created.key_id,
        "account": created.account,
        "name": created.name,
        "created_at": _timestamp(created.created_at),
    }


def _info_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "account": info.account,
        "name": info.name,
        "last4": info.last4,
        "created_at": _timestamp(info.created_at),
        "revoked_at": _timestamp(info.revoked_at),
    }


def _human_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _keys_table(infos: list[KeyInfo]) -> Table:
    """One row per key (revoked ones say so; ``--json`` has the times). Times are UTC."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("KEY ID", "ACCOUNT", "NAME", "KEY", "CREATED (UTC)", "STATUS"):
        table.add_column(header, overflow="fold", no_wrap=header not in ("ACCOUNT", "NAME"))
    for info in infos:
        status = "active" if info.revoked_at is None else "revoked"
        cells = (info.key_id, info.account, info.name or "", f"...{info.last4}")
        table.add_row(*(Text(cell) for cell in cells), _human_time(info.created_at), status)
    return table


def _key_panel(created: CreatedKey, title: str) -> Panel:
    """The key, once: it is not stored and will not be shown again."""
    label = f" ({created.name})" if created.name else ""
    body = Text.assemble(
        f"Account: {created.account}{label}\nKey id:  {created.key_id}\n\n",
        (created.key, "bold"),
        "\n\nThis key will not be shown again. Store it somewhere safe.",
    )
    return Panel(body, title=title, expand=False)


# First run


def _announce_default_key(created: CreatedKey, settings: Settings) -> None:
    """Show the key created on first start once, with examples ready to paste."""
    console = _stdout()
    console.print(_key_panel(created, "deepwell: first start, an API key was created"))
    base_url = f"http://{_client_host(settings.host)}:{settings.port}"
    model = _example_model(settings)
    for heading, example in (
        ("Try it with curl:", _curl_example(base_url, created.key, model)),
        ("Or with the OpenAI Python SDK:", _python_example(base_url, created.key, model)),
    ):
        console.print(f"\n{heading}\n", markup=False)
        console.print(example, markup=False, soft_wrap=True)
    console.print()


def _client_host(host: str) -> str:
    """An address a local client can use to reach a server bound to ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping a wildcard bind, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _example_model(settings: Settings) -> str:
    if EXAMPLE_MODEL in settings.models or not settings.models:
        return EXAMPLE_MODEL
    return next(iter(settings.models))


def _curl_example(base_url: str, key: str, model: str) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    return (
        f"curl {base_url}/chat/completions \\\n"
        f'  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )


def _python_example(base_url: str, key: str, model: str) -> str:
    return (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(api_key="{key}", base_url="{base_url}")\n'
        "response = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(response.choices[0].message.content)"
    )
