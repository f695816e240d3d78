"""The console in a real browser: sign in, keys, the playground, usage, top-ups, the admin
pages' refusal, and the status page."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_TOKEN, Console, screenshot
from tests.e2e.conftest import PLAIN, running_server, server_env

pytestmark = pytest.mark.e2e


def cell(page: Page, caption: str, column: str) -> str:
    """The text of ``column`` in the first row of the table captioned ``caption``."""
    table = page.locator("table", has=page.locator("caption", has_text=caption)).first
    headers = table.locator("thead th").all_inner_texts()
    text: str = (
        table.locator("tbody tr").first.locator("td").nth(headers.index(column)).inner_text()
    )
    return text


def test_sign_in_with_a_key_create_and_revoke_a_key(console: Console) -> None:
    page = console.sign_in(console.alice)
    expect(page.locator("#who")).to_have_text("Account: alice")
    expect(page.get_by_role("link", name="Accounts")).to_have_count(0)
    assert page.evaluate("() => sessionStorage.length") == 1  # this tab only
    assert page.evaluate("() => localStorage.length") == 0
    assert console.alice not in page.content()

    page.get_by_label("Name (optional)").fill("ci-runner")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key")
    expect(new_key).to_have_text(re.compile(r"^sk-[0-9a-f]{32}$"))
    secret = new_key.inner_text()
    row = page.locator("tr", has_text="ci-runner")
    expect(row).to_contain_text("active")
    screenshot(page, "keys")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke ci-runner").click()
    expect(row).to_contain_text("revoked")
    refused = page.evaluate(
        """async (key) => (await fetch('/user/balance',
               {headers: {Authorization: 'Bearer ' + key}})).status""",
        secret,
    )
    assert refused == 401


def test_the_playground_streams_the_reasoning_apart_from_the_answer(console: Console) -> None:
    page = console.sign_in(console.alice, "/console?next=/console/playground")
    page.get_by_label("Message").fill("Name one colour.")
    page.get_by_label("Max tokens").fill("24")
    expect(page.get_by_label("curl")).to_have_value(re.compile(r'"max_tokens": 24'))
    expect(page.get_by_label("Python (openai SDK)")).to_have_value(re.compile("stream=True"))
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#usage")).to_contain_text("Completion tokens")
    expect(page.locator("#usage")).to_contain_text("USD")
    assert page.locator("#reasoning").inner_text().strip()
    assert page.locator("#answer").inner_text().strip()
    assert page.locator("#reasoning").inner_text() != page.locator("#answer").inner_text()
    screenshot(page, "playground")


def test_usage_shows_the_requests_with_their_totals(console: Console) -> None:
    replies = []
    with console.server.client() as client:
        client.api_key = console.bob
        for prompt in ("Say yes.", "Say no.", "Say yes."):
            replies.append(
                client.chat.completions.create(
                    model="deepseek-v4-flash",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=8,
                    extra_body=PLAIN,
                )
            )
    tokens_in = sum(r.usage.prompt_tokens for r in replies if r.usage)
    tokens_out = sum(r.usage.completion_tokens for r in replies if r.usage)

    page = console.sign_in(console.bob, "/console?next=/console/usage")
    expect(page.locator("#summary table")).to_be_visible()
    assert cell(page, "Totals", "Requests") == "3"
    assert cell(page, "Totals", "Tokens in") == f"{tokens_in:,}"
    assert cell(page, "Totals", "Tokens out") == f"{tokens_out:,}"
    assert cell(page, "Tokens in and out per model: the numbers", "Tokens in") == f"{tokens_in:,}"
    assert cell(page, "Tokens in and out per key: the numbers", "Tokens out") == f"{tokens_out:,}"
    expect(page.locator("#time-tokens svg rect")).not_to_have_count(0)
    expect(page.locator("#key-cost")).to_be_visible()
    screenshot(page, "usage")


def balance_total(page: Page) -> float:
    expect(page.locator("#balances table")).to_be_visible()
    return float(cell(page, "Balance of alice", "Total"))


def test_the_admin_tops_up_and_the_account_sees_it(console: Console) -> None:
    mine = console.sign_in(console.alice, "/console?next=/console/balance")
    before = balance_total(mine)

    admin = console.sign_in(ADMIN_TOKEN, "/console?next=/console/accounts")
    expect(admin.locator("#who")).to_have_text("Admin (every account)")
    expect(admin.locator("#accounts")).to_contain_text("bob")
    screenshot(admin, "accounts")
    admin.get_by_role("link", name="Top up alice").click()
    admin.get_by_label("Amount").fill("7.5")
    admin.get_by_role("button", name="Add money").click()
    expect(admin.locator("#topup-message")).to_contain_text("Added 7.50 USD to alice")
    screenshot(admin, "balance-admin")

    mine.reload()
    assert balance_total(mine) == pytest.approx(before + 7.5, abs=0.011)
    expect(mine.locator("#history tbody tr").first).to_contain_text("7.50 USD")
    expect(mine.get_by_role("button", name="Add money")).to_be_hidden()
    screenshot(mine, "balance")


def test_an_account_key_is_refused_the_admin_pages(console: Console) -> None:
    page = console.sign_in(console.alice)
    page.goto(console.url + "/console/accounts")
    expect(page.get_by_role("heading", name="Admin only")).to_be_visible()
    statuses = page.evaluate(
        """async (key) => Promise.all(['/admin/accounts', '/admin/keys', '/admin/usage'].map(
               async (path) => (await fetch(path,
                   {headers: {Authorization: 'Bearer ' + key}})).status))""",
        console.alice,
    )
    assert statuses == [401, 401, 401]
    screenshot(page, "admin-refused")


def test_the_status_page_shows_the_api_up(console: Console) -> None:
    page = console.page()
    page.goto(console.url + "/status")
    expect(page.locator("#overall-status")).to_have_text("All systems operational")
    expect(page.locator("#components")).to_contain_text("deepseek-v4-flash")
    expect(page.locator("#components .pill").first).to_have_text("up")
    assert "alice" not in page.content()
    screenshot(page, "status")


def test_the_status_page_records_an_engine_restart(
    console: Console, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("deepwell-restart")
    env = server_env(data_dir, DEEPWELL_ENGINE__FAIL_AT_STEP="3")
    with running_server(data_dir, env) as server, server.client() as client:
        page = console.page()
        page.goto(server.base_url + "/status")
        expect(page.locator("#overall-status")).to_have_text("All systems operational")
        stream = client.chat.completions.create(
            model="deepseek-v4-flash",
            messages=[{"role": "user", "content": "Say hello in five words."}],
            max_tokens=16,
            stream=True,
            extra_body=PLAIN,
        )
        for _ in stream:
            pass
        page.reload()
        expect(page.locator("#incidents")).to_contain_text("Engine restarted after a failure")
        deadline = time.monotonic() + 30
        while "ongoing" in page.locator("#incidents").inner_text() and time.monotonic() < deadline:
            page.reload()
            page.wait_for_timeout(500)
        expect(page.locator("#overall-status")).to_have_text("All systems operational")
        screenshot(page, "status-after-restart")
