"""``deepwell keys``: create, list and revoke API keys."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from typing import Any

from rich import box
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from deepwell.accounts.keys import CreatedKey, KeyInfo, KeyStore
from deepwell.accounts.revocations import announce
from deepwell.cli.common import (
    CommandFailed,
    Subcommands,
    json_flag,
    print_json,
    settings_from,
    stdout,
    timestamp,
    warn,
    with_database,
)


def add_keys(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    keys = commands.add_parser("keys", help="manage API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    as_json = json_flag()

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


def _keys_create(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    created = with_database(settings, lambda db: KeyStore(db).create(args.account, args.name))
    if args.json:
        print_json(_created_json(created))
    else:
        stdout().print(key_panel(created, "New API key"))


def _keys_list(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    infos = with_database(settings, lambda db: KeyStore(db).list(args.account))
    if args.json:
        print_json({"keys": [_info_json(info) for info in infos]})
    elif infos:
        stdout().print(_keys_table(infos))
    else:
        stdout().print("No API keys.")


def _keys_revoke(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    if not with_database(settings, lambda db: KeyStore(db).revoke(args.key_id)):
        raise CommandFailed(f"no API key with id {args.key_id!r}")
    if not asyncio.run(announce(settings.redis_url, args.key_id)):
        warn(
            "the key is revoked, but Redis could not be told: servers refuse it within "
            f"key_cache_s ({settings.key_cache_s:g} s)"
        )
    if args.json:
        print_json({"key_id": args.key_id, "revoked": True})
    else:
        stdout().print(f"Revoked {args.key_id}.", markup=False, highlight=False)


def _created_json(created: CreatedKey) -> dict[str, Any]:
    return {
        "key": created.key,
        "key_id": created.key_id,
        "account": created.account,
        "name": created.name,
        "created_at": timestamp(created.created_at),
    }


def _info_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "account": info.account,
        "name": info.name,
        "last4": info.last4,
        "created_at": timestamp(info.created_at),
        "revoked_at": timestamp(info.revoked_at),
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


def key_panel(created: CreatedKey, title: str) -> Panel:
    """The key, once: it is not stored and will not be shown again."""
    label = f" ({created.name})" if created.name else ""
    body = Text.assemble(
        f"Account: {created.account}{label}\nKey id:  {created.key_id}\n\n",
        (created.key, "bold"),
        "\n\nThis key will not be shown again. Store it somewhere safe.",
    )
    return Panel(body, title=title, expand=False)
