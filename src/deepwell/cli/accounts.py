"""``deepwell accounts`` (top-ups, balances) and ``deepwell usage`` (the ledger by day)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from deepwell.billing.balances import AccountBalances, BalanceInfo, Balances
from deepwell.billing.usage import UsageRow, usage_report
from deepwell.cli.common import (
    CommandFailed,
    Subcommands,
    json_flag,
    print_json,
    settings_from,
    stdout,
    with_database,
)


def add_accounts(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    accounts = commands.add_parser("accounts", help="balances and top-ups")
    actions = accounts.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    parents = [common, json_flag()]

    topup = actions.add_parser("topup", parents=parents, help="add money to an account")
    topup.add_argument("name", metavar="NAME", help="the account")
    topup.add_argument("amount", metavar="AMOUNT", type=_amount, help="e.g. 10 or 2.50")
    topup.add_argument("--currency", default=None, help="default: the billing currency")
    topup.add_argument(
        "--granted", action="store_true", help="a grant (spent before topped-up money)"
    )
    topup.set_defaults(handler=_topup)

    balance = actions.add_parser("balance", parents=parents, help="an account's balance")
    balance.add_argument("name", metavar="NAME", help="the account")
    balance.set_defaults(handler=_balance)

    listing = actions.add_parser("list", parents=parents, help="every account's balance")
    listing.set_defaults(handler=_list)


def add_usage(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    usage = commands.add_parser(
        "usage", parents=[common, json_flag()], help="tokens and cost per day and model"
    )
    usage.add_argument("--account", help="only this account")
    usage.add_argument("--since", type=date.fromisoformat, metavar="DATE", help="YYYY-MM-DD")
    usage.add_argument("--until", type=date.fromisoformat, metavar="DATE", help="inclusive")
    usage.set_defaults(handler=_usage)


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(f"the amount must be positive: {text!r}")
    return amount


# Commands


def _topup(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    currency = (args.currency or settings.billing.currency).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise CommandFailed(f"not a currency code: {args.currency!r}")
    info = with_database(
        settings,
        lambda db: Balances(db).credit(args.name, args.amount, currency, granted=args.granted),
    )
    if args.json:
        print_json(
            {
                "account": args.name,
                "added": _plain(args.amount),
                "granted": args.granted,
                "balance": _balance_json(info),
            }
        )
    else:
        kind = "granted" if args.granted else "topped-up"
        stdout().print(
            Text(f"Added {_plain(args.amount)} {currency} ({kind}) to {args.name}."),
        )
        stdout().print(_balances_table([(args.name, info)]))


def _balance(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    found = with_database(settings, lambda db: Balances(db).named(args.name))
    if args.json:
        print_json(_account_json(found))
    elif found.balances:
        stdout().print(_balances_table((found.account, b) for b in found.balances))
    else:
        stdout().print(Text(f"{found.account} has no balance."))


def _list(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    accounts = with_database(settings, lambda db: Balances(db).all())
    if args.json:
        print_json({"accounts": [_account_json(a) for a in accounts]})
    elif accounts:
        rows = [(a.account, b) for a in accounts for b in a.balances]
        stdout().print(_balances_table(rows))
        empty = [a.account for a in accounts if not a.balances]
        if empty:
            stdout().print(Text("No balance: " + ", ".join(empty)))
    else:
        stdout().print("No accounts.")


def _usage(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    rows = with_database(
        settings,
        lambda db: usage_report(db, account=args.account, since=args.since, until=args.until),
    )
    if args.json:
        print_json({"usage": [_usage_json(row) for row in rows], "total_cost": _totals(rows)})
    elif rows:
        stdout().print(_usage_table(rows))
    else:
        stdout().print("No usage.")


# Rendering


def _plain(amount: Decimal) -> str:
    """An amount at full precision, without trailing zeros past the cents."""
    text = format(amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _balance_json(info: BalanceInfo) -> dict[str, Any]:
    return {
        "currency": info.currency,
        "total_balance": _plain(info.total),
        "granted_balance": _plain(info.granted),
        "topped_up_balance": _plain(info.topped_up),
        "held": _plain(info.held),
    }


def _account_json(found: AccountBalances) -> dict[str, Any]:
    return {"account": found.account, "balances": [_balance_json(b) for b in found.balances]}


def _usage_json(row: UsageRow) -> dict[str, Any]:
    return {
        "day": row.day.isoformat(),
        "model": row.model,
        "currency": row.currency,
        "requests": row.requests,
        "cache_hit_tokens": row.hit_tokens,
        "cache_miss_tokens": row.miss_tokens,
        "output_tokens": row.output_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cost": _plain(row.cost),
        "cache_hit_ratio": round(row.cache_hit_ratio, 4),
    }


def _totals(rows: list[UsageRow]) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.cost
    return {currency: _plain(total) for currency, total in sorted(totals.items())}


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        text = header in ("ACCOUNT", "DAY", "MODEL", "CURRENCY")
        table.add_column(header, justify="left" if text else "right", overflow="fold", no_wrap=text)
    return table


def _balances_table(rows: Iterable[tuple[str, BalanceInfo]]) -> Table:
    table = _table("ACCOUNT", "CURRENCY", "TOTAL", "GRANTED", "TOPPED UP", "HELD")
    for account, info in rows:
        amounts = (info.total, info.granted, info.topped_up, info.held)
        table.add_row(Text(account), info.currency, *(_plain(a) for a in amounts))
    return table


def _usage_table(rows: list[UsageRow]) -> Table:
    table = _table("DAY", "MODEL", "REQS", "HIT", "MISS", "OUT", "HIT%", "COST", "CUR")
    for row in rows:
        table.add_row(
            row.day.isoformat(),
            Text(row.model),
            str(row.requests),
            str(row.hit_tokens),
            str(row.miss_tokens),
            str(row.output_tokens),
            f"{row.cache_hit_ratio:.0%}",
            _plain(row.cost),
            row.currency,
        )
    return table
