"""The console in Debian's Chromium: sign in, find a customer, see their recommendations change
after an event is posted, markup in an attribute shown as text, no CSP violation."""

from __future__ import annotations

import httpx

from tests.serving.console.seed import XSS


def _recommended(tab) -> list[str]:
    return tab.page.locator("#recommendations li").evaluate_all(
        "items => items.map(li => li.dataset.item)"
    )


def test_sign_in_shows_the_overview(tab):
    tab.goto("/")
    assert "/console/login" in tab.page.url  # no page without a session
    tab.sign_in("read")
    assert tab.page.locator("#model-version").inner_text().strip()
    assert "role read" in tab.page.locator(".who").inner_text()
    tab.screenshot("overview")
    assert tab.errors == []


def test_find_a_customer_and_see_recommendations_change_after_an_event(tab, live):
    tab.sign_in("marketer")
    user = live.store.customers.search("u", limit=1)[0]
    tab.page.click("nav >> text=Customers")
    tab.page.fill("#q", user["user_id"])
    tab.page.click("form.search button")
    tab.page.wait_for_url(f"**/console/customers/{user['user_id']}")
    before = _recommended(tab)
    assert len(before) == 10
    tab.screenshot("customer")

    # The customer buys the first recommended item: the next answer no longer offers it.
    event = {"user_id": user["user_id"], "item_id": before[0], "event_type": "purchase",
             "value": 10.0}  # fmt: skip
    answer = httpx.post(
        f"{live.url}/v1/events",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {live.keys['ingest']}"},
    )
    assert answer.status_code == 200, answer.text
    tab.page.reload()
    after = _recommended(tab)
    assert before[0] not in after and len(after) == 10
    assert tab.page.locator("#events tbody tr").first.inner_text().count("purchase") == 1
    assert tab.errors == []


def test_markup_in_an_attribute_is_shown_as_text(tab):
    tab.sign_in("read")
    tab.goto("/customers/xss-user")
    assert tab.page.locator("dd.attribute").inner_text() == XSS
    assert tab.page.evaluate("window.__xss === undefined")
    tab.screenshot("customer-escaped")
