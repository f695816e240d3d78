"""``deepwell serve``, and what the first start does: an account, a key and a grant."""

from __future__ import annotations

import argparse
import json

from deepwell.accounts.keys import DEFAULT_ACCOUNT, CreatedKey, KeyStore
from deepwell.billing.balances import Balances
from deepwell.cli.common import Subcommands, settings_from, stdout, with_database
from deepwell.cli.keys import key_panel
from deepwell.settings import Settings
from deepwell.store.db import Database

EXAMPLE_MODEL = "deepseek-v4-flash"
"""The model the first-run examples use, when the settings serve it."""


def add_serve(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the API server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> None:
    settings = settings_from(args.config, host=args.host, port=args.port)
    created = with_database(settings, lambda database: _first_start(database, settings))
    if created is not None:
        _announce_default_key(created, settings)
    # Imported here: deepwell.server pulls in the engine and llama.cpp.
    from deepwell.server import run

    run(settings)


async def _first_start(database: Database, settings: Settings) -> CreatedKey | None:
    """On an empty database: account ``default``, one key, and the starting grant."""
    created = await KeyStore(database).ensure_default_key()
    grant = settings.billing.starting_grant
    if created is not None and grant > 0:
        await Balances(database).credit(
            DEFAULT_ACCOUNT, grant, settings.billing.currency, granted=True
        )
    return created


def _announce_default_key(created: CreatedKey, settings: Settings) -> None:
    """Show the key created on first start once, with examples ready to paste."""
    console = stdout()
    console.print(key_panel(created, "deepwell: first start, an API key was created"))
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
