"""``/console``: the pages and assets ship in the package, locked down, with no secret."""

from __future__ import annotations

import re

import httpx
import pytest

from deepwell.console import STATIC_DIR
from deepwell.http.routes.console import PAGES


@pytest.mark.parametrize("path", ["/console", *(f"/console/{page}" for page in PAGES)])
async def test_every_page_is_served_with_a_strict_policy(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<html lang="en">' in response.text
    assert "<script>" not in response.text  # no inline script


def test_the_assets_load_nothing_from_elsewhere_and_never_use_local_storage() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert "localStorage" not in text, path.name
        assert "innerHTML" not in text, path.name
        assert not re.search(r"""(src|href)=["']https?:""", text), path.name
        assert "document.cookie" not in text, path.name


async def test_assets_are_served_by_bare_name_only(anonymous: httpx.AsyncClient) -> None:
    script = await anonymous.get("/console/static/common.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    for name in ("nope.js", "..%2Fservice.py", "service.py", "%2e%2e%2f__init__.py"):
        assert (await anonymous.get(f"/console/static/{name}")).status_code == 404
    assert (await anonymous.get("/console/admin")).status_code == 404


async def test_the_pages_hold_no_secret(anonymous: httpx.AsyncClient) -> None:
    for page in ("", *(f"/{page}" for page in PAGES)):
        text = (await anonymous.get(f"/console{page}")).text
        assert "sk-" not in text.replace("sk-…", "")
