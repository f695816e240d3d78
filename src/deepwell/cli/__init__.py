"""The ``deepwell`` command line: run the server, manage API keys, accounts and money.

    deepwell serve [--host HOST] [--port PORT] [--config FILE]
    deepwell keys create --account NAME [--name LABEL] [--json] [--config FILE]
    deepwell keys list [--account NAME] [--json] [--config FILE]
    deepwell keys revoke KEY_ID [--json] [--config FILE]
    deepwell accounts topup NAME AMOUNT [--currency USD] [--granted] [--json] [--config FILE]
    deepwell accounts balance NAME [--json] [--config FILE]
    deepwell accounts list [--json] [--config FILE]
    deepwell usage [--account NAME] [--since DATE] [--until DATE] [--json] [--config FILE]

Settings come from ``deepwell.settings.Settings`` (so ``DEEPWELL_DATA_DIR`` and the other
``DEEPWELL_*`` variables apply). With ``--json`` a command writes exactly one JSON
object to stdout. Errors go to stderr and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from deepwell import __version__
from deepwell.billing.balances import UnknownAccount
from deepwell.cli.accounts import add_accounts, add_usage
from deepwell.cli.common import CommandFailed, Handler, fail
from deepwell.cli.keys import add_keys
from deepwell.cli.serve import add_serve
from deepwell.errors import ConfigurationError


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
        UnknownAccount,
        ValidationError,
        ValueError,
        OSError,
        SQLAlchemyError,
    ) as exc:
        fail(str(exc))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``deepwell``; each leaf command sets ``handler``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser = argparse.ArgumentParser(
        prog="deepwell", description="A self-hosted implementation of the DeepSeek API."
    )
    parser.add_argument("--version", action="version", version=f"deepwell {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve(commands, common)
    add_keys(commands, common)
    add_accounts(commands, common)
    add_usage(commands, common)
    return parser
