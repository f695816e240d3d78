"""Reading the bearer token of a request."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from deepwell.http.auth import bearer_token


def request_with(*headers: tuple[bytes, bytes]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": list(headers)})


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer sk-abc", "sk-abc"),
        (b"bearer sk-abc", "sk-abc"),
        (b"BEARER sk-abc", "sk-abc"),
        (b"Bearer   sk-abc  ", "sk-abc"),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"Bearer    ", None),
        (b"Basic dXNlcjpwYXNz", None),
        (b"sk-abc", None),
        (b"Token sk-abc", None),
        (b"", None),
    ],
)
def test_bearer_token(value: bytes, token: str | None) -> None:
    assert bearer_token(request_with((b"authorization", value))) == token


def test_no_authorization_header() -> None:
    assert bearer_token(request_with((b"x-api-key", b"sk-abc"))) is None
