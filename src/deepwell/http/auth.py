"""API key authentication: ``Authorization: Bearer sk-...``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from deepwell.errors import AuthenticationFailed
from deepwell.http.state import services
from deepwell.vocabulary import Caller


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request) -> Caller:
    """The caller behind the request's key; a missing or unknown key is a 401."""
    key = bearer_token(request)
    caller = await services(request).keys.authenticate(key) if key else None
    if caller is None:
        raise AuthenticationFailed.for_key(key)
    return caller


AuthenticatedCaller = Annotated[Caller, Depends(authenticate)]
