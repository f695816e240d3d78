"""A real ``deepwell serve`` with an admin token, and headless Chromium driven by Playwright.

Playwright drives Debian's Chromium (``/usr/bin/chromium``, or ``DEEPWELL_CHROMIUM``); its
own browser download is not used. Without that browser the tests are skipped. Screenshots
of each page go to ``build/screenshots`` (or ``DEEPWELL_SCREENSHOTS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.conftest import Server, create_key, running_server, server_env

ADMIN_TOKEN = "browser-admin-token-0123456789"
CHROMIUM = Path(os.environ.get("DEEPWELL_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("DEEPWELL_SCREENSHOTS", "build/screenshots"))
TIMEOUT_MS = 30_000
# Generation on a few busy cores can take a while: every wait and expectation gets this long.
expect.set_options(timeout=TIMEOUT_MS)


@dataclass(frozen=True)
class Console:
    server: Server
    browser: Browser
    # Keys of accounts created for the tests (each topped up with 100 USD).
    alice: str
    bob: str

    @property
    def url(self) -> str:
        return self.server.base_url

    def page(self) -> Page:
        """A page in a fresh context: a new tab's sessionStorage, nothing signed in."""
        context: BrowserContext = self.browser.new_context(viewport={"width": 1366, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        return context.new_page()

    def sign_in(self, secret: str, path: str = "/console") -> Page:
        page = self.page()
        page.goto(self.url + path)
        page.get_by_label("API key or admin token").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/**")
        return page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Playwright's sync API runs an event loop on this thread while it is open: it is
    closed with the module, so the asyncio tests that follow get the thread back."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    data_dir = tmp_path_factory.mktemp("deepwell-console")
    env = server_env(data_dir, DEEPWELL_ADMIN_TOKEN=ADMIN_TOKEN)
    alice = create_key(env, "alice")
    with running_server(data_dir, env, key=alice) as server:
        yield Console(server, browser, alice, create_key(env, "bob"))
