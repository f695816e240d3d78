"""``deepwell accounts`` (top-ups, balances, concurrency limits) and ``deepwell usage`` (the
ledger by day)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from deepwell.accounts.limits import LimitStore
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
from deepwell.limits.policy import ALL_MODELS, configured, for_balance
from deepwell.settings import Settings
from deepwell.store.db import Database


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

    limit = actions.add_parser(
        "limit", parents=parents, help="an account's own limit on requests open at once"
    )
    limit.add_argument("name", metavar="NAME", help="the account")
    value = limit.add_mutually_exclusive_group(required=True)
    value.add_argument(
        "--concurrency", type=_concurrency, metavar="N", help="requests open at once (1 or more)"
    )
    value.add_argument(
        "--clear", action="store_true", help="remove the override: the configured limit applies"
    )
    limit.add_argument(
        "--model", default=ALL_MODELS, metavar="ID", help="a public model id (default: every model)"
    )
    limit.set_defaults(handler=_limit)


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


def _concurrency(text: str) -> int:
    try:
        concurrency = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if concurrency < 1:
        raise argparse.ArgumentTypeError(
            f"the concurrency must be at least 1 (--clear removes the override): {text!r}"
        )
    return concurrency


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
    found, overrides = with_database(settings, lambda db: _standing(db, args.name))
    if args.json:
        print_json({**_account_json(found), "concurrency": _effective(settings, found, overrides)})
        return
    if found.balances:
        stdout().print(_balances_table((found.account, b) for b in found.balances))
    else:
        stdout().print(Text(f"{found.account} has no balance."))
    _print_limits(settings, found, overrides)


def _limit(args: argparse.Namespace) -> None:
    settings = settings_from(args.config)
    model = _limited_model(settings, args.model)
    concurrency: int | None = None if args.clear else args.concurrency

    async def apply(database: Database) -> tuple[AccountBalances, dict[str, int]]:
        await LimitStore(database).set(args.name, concurrency, model)
        return await _standing(database, args.name)

    found, overrides = with_database(settings, apply)
    if args.json:
        print_json(
            {
                "account": found.account,
                "model": model,
                "override": concurrency,
                "overrides": overrides,
                "concurrency": _effective(settings, found, overrides),
            }
        )
        return
    scope = "every model" if model == ALL_MODELS else model
    if concurrency is None:
        stdout().print(Text(f"Removed {found.account}'s own limit on {scope}."))
    else:
        stdout().print(Text(f"{found.account}: at most {concurrency} at once on {scope}."))
    _print_limits(settings, found, overrides)


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


# Concurrency limits


async def _standing(database: Database, name: str) -> tuple[AccountBalances, dict[str, int]]:
    """The balances and concurrency overrides of the account ``name``."""
    found = await Balances(database).named(name)
    return found, await LimitStore(database).overrides(found.account_id)


def _limited_model(settings: Settings, model: str) -> str:
    """``model`` if an override may name it: a public model id, or ``ALL_MODELS``."""
    if model == ALL_MODELS or model in settings.models:
        return model
    known = ", ".join([*settings.models, ALL_MODELS])
    raise CommandFailed(f"not a public model id: {model!r} (one of: {known})")


def _available(settings: Settings, found: AccountBalances) -> Decimal | None:
    """What the account may still hold in the billing currency; None with billing off."""
    if not settings.billing.enabled:
        return None
    infos = [b for b in found.balances if b.currency == settings.billing.currency]
    return sum((b.total - b.held for b in infos), Decimal(0))


def _effective(
    settings: Settings, found: AccountBalances, overrides: dict[str, int]
) -> dict[str, int]:
    """The account's limit on each public model, its balance taken into account."""
    available = _available(settings, found)
    return {
        model: for_balance(settings, configured(settings, model, overrides), available)
        for model in settings.models
    }


def _print_limits(settings: Settings, found: AccountBalances, overrides: dict[str, int]) -> None:
    effective = _effective(settings, found, overrides)
    table = _table("MODEL", "CONCURRENCY")
    for model, limit in effective.items():
        table.add_row(Text(model), str(limit))
    stdout().print(table)
    if any(limit < configured(settings, m, overrides) for m, limit in effective.items()):
        low = settings.limits.concurrency.low_balance
        currency = settings.billing.currency
        stdout().print(
            Text(f"Lowered for a low balance: under {_plain(low)} {currency} available.")
        )


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
