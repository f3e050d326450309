"""Campaign pages in Debian's Chromium over the seeded A/B campaign: the list, the report with
its chart drawn and the arm table, recent sends with their items, pause then activate as a
marketer, and a read key that sees no buttons and whose forged POST is refused."""

from __future__ import annotations

from tests.serving.console.seed_campaigns import CAMPAIGN


def test_campaigns_list_shows_state_and_sends(tab, live):
    tab.sign_in("read")
    tab.page.click("nav >> text=Campaigns")
    row = tab.page.locator(f"#campaigns tr[data-campaign='{CAMPAIGN}']")
    assert row.locator(".state").inner_text().lower() == "active"
    sent = live.store.campaigns.sent_counts()[CAMPAIGN]
    assert sent > 0 and row.locator(".sends").inner_text() == str(sent)
    tab.screenshot("campaigns")
    assert tab.errors == []


def test_campaign_report_chart_arms_and_recent_sends(tab, live):
    tab.sign_in("read")
    tab.goto(f"/campaigns/{CAMPAIGN}")
    canvas = tab.page.locator("canvas[data-chart='conversion-chart']")
    canvas.wait_for()
    tab.page.wait_for_function("document.querySelector('#conversion-canvas').dataset.rendered > 0")
    assert int(canvas.get_attribute("data-rendered")) >= 2 * 3  # two arms, three days
    arms = tab.page.locator("#arms tbody tr")
    assert sorted(arms.evaluate_all("rows => rows.map(r => r.dataset.arm)")) == ["holdout", "mail"]
    mail = tab.page.locator("#arms tr[data-arm='mail']")
    assert (
        "%" in mail.locator(".rate").inner_text() and "pts" in mail.locator(".uplift").inner_text()
    )
    assert mail.locator(".p-value").inner_text() != "-"
    # the flow: the split's two arms as branches, the send under the mail arm
    assert tab.page.locator("#flow .branches > li").count() == 2
    assert tab.page.locator("#flow li[data-step='mail']").count() == 1
    # recent sends: the newest 20, each with its recommended items linked to the item page
    sends = tab.page.locator("#sends tbody tr")
    assert sends.count() == 20
    message = live.store.campaigns.messages(CAMPAIGN, limit=1, newest_first=True)[0]
    links = sends.first.locator("a[data-item]")
    assert links.evaluate_all("as => as.map(a => a.dataset.item)") == message["items"]
    assert links.first.get_attribute("href").endswith(f"/console/items/{message['items'][0]}")
    assert tab.page.locator("#activate-button, #paused-button").count() == 0  # read key
    assert tab.page.locator("#read-only").is_visible()
    tab.screenshot("campaign")
    assert tab.errors == []


def test_a_marketer_pauses_then_activates(tab, live):
    tab.sign_in("marketer")
    tab.goto(f"/campaigns/{CAMPAIGN}")
    tab.page.on("dialog", lambda dialog: dialog.accept())
    tab.page.click("#paused-button")
    tab.page.wait_for_url(f"**/console/campaigns/{CAMPAIGN}")
    assert tab.page.locator("#campaign-state").inner_text().lower() == "paused"
    assert live.store.campaigns.get(CAMPAIGN)["status"] == "paused"
    tab.page.click("#active-button")
    tab.page.wait_for_url(f"**/console/campaigns/{CAMPAIGN}")
    assert tab.page.locator("#campaign-state").inner_text().lower() == "active"
    assert live.store.campaigns.get(CAMPAIGN)["status"] == "active"
    assert tab.errors == []


def test_a_read_key_is_refused_a_forged_status_change(tab, live):
    tab.sign_in("read")
    tab.goto(f"/campaigns/{CAMPAIGN}")
    assert tab.page.locator("form[action$='/status']").count() == 0
    answer = tab.page.evaluate(
        f"window.consoleFetch('/campaigns/{CAMPAIGN}/status', {{status: 'paused'}})"
    )
    assert answer["status"] == 403  # the CSRF header is right: the role refuses
    csrf = tab.page.evaluate("document.body.dataset.csrf")
    form = tab.page.request.post(
        f"{live.url}/console/campaigns/{CAMPAIGN}/status",
        form={"csrf_token": csrf, "status": "paused"},
    )
    assert form.status == 403 and "role marketer" in form.text()
    assert live.store.campaigns.get(CAMPAIGN)["status"] == "active"
    assert tab.errors and all("403" in e for e in tab.errors), tab.errors
