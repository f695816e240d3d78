"""Admin-only endpoints: ``Authorization: Bearer <admin_token>``."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request
from pydantic import SecretStr

from deepwell.errors import AuthenticationFailed
from deepwell.http.auth import bearer_token

REFUSED = "Authentication Fails (this endpoint needs the admin token as a Bearer token)"


def admin_only(token: SecretStr | None) -> Callable[[Request], Awaitable[None]]:
    """A dependency that lets a request through only if its Bearer token is ``token``
    (compared in constant time). Anything else is a 401, and so is every request when
    no token (or an empty one) is configured: an unset token never opens the door."""

    async def check(request: Request) -> None:
        if not is_admin(request, token):
            raise AuthenticationFailed(REFUSED)

    return check


def is_admin(request: Request, token: SecretStr | None) -> bool:
    """Whether ``request``'s Bearer token is ``token`` (never, for an unset or empty one)."""
    expected = token.get_secret_value().encode() if token is not None else b""
    given = bearer_token(request)
    return bool(expected) and given is not None and secrets.compare_digest(given.encode(), expected)
