"""The console's segment pages in Debian's Chromium: the list with sparklines, the RFM heat map
and the clusters scatter; a segment created with the editor (live preview, the JSON-path message
of an invalid definition, save, the segment's page); a read key refused the save. Plus fast
checks of the library summaries the list draws."""

from __future__ import annotations

import json
import uuid

import httpx
import numpy as np

from recsys.segments import views
from recsys.segments.rfm import group_of
from recsys.segments.service import SegmentService
from serving.console.segments import _heat

VALID = {"type": "attribute", "path": "country", "op": "eq", "value": "FR"}
INVALID = {
    "type": "and",
    "children": [VALID, {"type": "performed", "event_type": "purchase", "window": {"seconds": 0}}],
}


def _api(live, method: str, path: str, role: str, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {live.keys[role]}"}
    return httpx.request(method, f"{live.url}{path}", headers=headers, timeout=30, **kw)


def _rendered(tab, selector: str) -> list[int]:
    tab.page.wait_for_function(
        f"() => [...document.querySelectorAll({selector!r})].every(c => c.dataset.rendered)"
    )
    return tab.page.locator(selector).evaluate_all("cs => cs.map(c => +c.dataset.rendered)")


def _only_status(errors: list[str], status: int) -> bool:
    return all(str(status) in e for e in errors)


# -- fast checks: no browser --------------------------------------------------------------------
def test_the_rfm_grid_counts_every_scored_customer_in_its_cell_and_group():
    counts = {(5, 5, 5): 7, (5, 1, 1): 2, (1, 4, 5): 3, (1, 4, 2): 1, (3, 3, 3): 4}
    grid = _heat(views.rfm_grid(counts))
    assert [row["r"] for row in grid["rows"]] == [5, 4, 3, 2, 1]
    cell = {(row["r"], c["f"]): c for row in grid["rows"] for c in row["cells"]}
    assert cell[5, 5]["count"] == 7 and cell[5, 5]["groups"] == [("Champions", 7)]
    # R1 F4 holds two groups (M decides): the larger first.
    assert cell[1, 4]["groups"] == [(group_of(1, 4, 5), 3), (group_of(1, 4, 2), 1)]
    assert grid["total"] == sum(counts.values()) and grid["max"] == 7
    assert cell[5, 5]["bucket"] == 5 and cell[2, 2]["bucket"] == 0 and cell[5, 1]["bucket"] >= 1


def test_the_projection_is_two_principal_components_with_fixed_signs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)) * np.array([9, 3, 1, 1, 1, 1, 1, 1])
    xy = views.project_2d(x)
    assert xy.shape == (300, 2)
    assert np.allclose(xy.mean(axis=0), 0, atol=1e-9)
    assert xy[:, 0].var() > xy[:, 1].var() > 1.5  # the two widest directions, widest first
    assert np.allclose(views.project_2d(x), xy)  # same picture on every call
    assert views.project_2d(np.zeros((0, 4))).shape == (0, 2)


def test_the_batched_stats_equal_each_segments_own(live):
    service = SegmentService(live.store)
    every = service.stats_of_all(30)
    assert set(every) == {row["id"] for row in live.store.segments.all()}
    for segment_id, stats in every.items():
        assert stats == service.stats(segment_id, 30)
    assert any(stats["days"][-1]["entries"] for stats in every.values())


# -- in the browser ------------------------------------------------------------------------------
def test_the_list_shows_sizes_sparklines_the_rfm_heat_map_and_the_clusters(tab, live):
    tab.sign_in("marketer")
    tab.page.click("nav >> text=Segments")
    tab.page.wait_for_url("**/console/segments")
    rows = tab.page.locator("#segments tbody tr[data-segment]")
    api = _api(live, "GET", "/v1/segments", "read").json()["segments"]
    assert rows.count() == len(api)
    sizes = dict(zip(rows.evaluate_all("rs => rs.map(r => r.dataset.segment)"),
                     rows.locator("td.num").all_inner_texts(), strict=True))  # fmt: skip
    assert sizes == {s["id"]: f"{s['size']:,}" for s in api}  # the API's sizes
    sparks = _rendered(tab, "#segments canvas")
    assert len(sparks) == len(api) and min(sparks) > 0

    heat = tab.page.locator("table.heat#rfm-heat")
    assert heat.locator("tbody tr").count() == 5 and heat.locator("tbody td").count() == 25
    cells = heat.locator("tbody td")
    shown = sum(int(t.split()[0].replace(",", "")) for t in cells.all_inner_texts())
    rfm_members = sum(s["size"] for s in api if s["kind"] == "rfm")
    assert shown == rfm_members > 0  # every scored customer is in one cell and one RFM group
    assert all(c.startswith("h") for c in cells.evaluate_all("ts => ts.map(t => t.className)"))
    assert heat.locator("[style]").count() == 0  # shades by class: the CSP allows no style=
    assert "Champions" in tab.page.locator("#rfm-groups").inner_text()

    [scatter] = _rendered(tab, "#cluster-canvas")
    assert 0 < scatter <= 2000
    labels = json.loads(tab.page.locator("#cluster-scatter").text_content())
    assert [d["label"] for d in labels["data"]["datasets"]][:4] == [
        f"Cluster {i}" for i in range(4)
    ]
    assert tab.page.locator("#new-segment").is_visible()
    tab.screenshot("segments")
    assert tab.errors == []


def test_create_a_segment_with_the_editor_and_its_live_preview(tab, live):
    tab.sign_in("marketer")
    tab.goto("/segments")
    tab.page.click("#new-segment")
    tab.page.wait_for_url("**/console/segments/new")
    segment_id = f"fr-{uuid.uuid4().hex[:6]}"
    tab.page.fill("#id", segment_id)
    tab.page.fill("#name", "Customers in France")
    tab.page.fill("#definition", json.dumps(VALID, indent=2))
    expected = _api(live, "POST", "/v1/segments/preview", "read", json={"definition": VALID})
    count = f"{expected.json()['count']:,}"
    tab.page.wait_for_function(
        f"() => document.getElementById('preview-count').textContent === {count!r}"
    )
    assert expected.json()["count"] > 0
    assert tab.page.locator("#preview-sample li").count() == min(20, expected.json()["count"])

    # An invalid definition: the JSON path and problem right under the text area, the part
    # pointed at, and the preview cleared.
    tab.page.fill("#definition", json.dumps(INVALID, indent=2))
    problem = tab.page.locator("#definition-problem")
    problem.locator(".path").wait_for()
    assert problem.locator(".path").inner_text() == "definition.children[1].window.seconds"
    assert problem.locator(".what").inner_text() == "must be > 0"
    assert '"seconds": 0' in problem.locator("pre.excerpt").inner_text()
    assert tab.page.locator("#definition").get_attribute("aria-invalid") == "true"
    tab.page.click("#definition-problem button")
    selected = tab.page.evaluate(
        "() => { const a = document.getElementById('definition');"
        " return a.value.slice(a.selectionStart, a.selectionEnd); }"
    )
    assert selected == '"seconds": 0'
    assert tab.page.locator("#preview-count").inner_text() == "-"
    tab.screenshot("segment-editor")

    # Not valid JSON: the parser's place.
    tab.page.fill("#definition", '{"type": "attribute",, }')
    tab.page.wait_for_function(
        "() => document.querySelector('#definition-problem .what')"
        "?.textContent.startsWith('not valid JSON')"
    )

    tab.page.fill("#definition", json.dumps(VALID, indent=2))
    tab.page.wait_for_function(
        f"() => document.getElementById('preview-count').textContent === {count!r}"
    )
    assert problem.inner_text().strip() == ""
    tab.page.click("#save")
    tab.page.wait_for_url(f"**/console/segments/{segment_id}")
    assert tab.page.locator("#segment-name").inner_text() == "Customers in France"
    assert tab.page.locator("#segment-size").inner_text() == count
    [drawn] = _rendered(tab, "#changes-canvas")
    assert drawn == 60  # 30 days x (entries, exits)
    members = tab.page.locator("#members tbody a").all_inner_texts()
    assert len(members) == min(50, expected.json()["count"]) and members == sorted(members)
    assert json.loads(tab.page.locator("#definition").inner_text()) == VALID
    assert tab.page.locator("#edit-segment").is_visible()
    tab.screenshot("segment")
    # The only failures were the invalid previews' 422 answers (and Chromium's log of them).
    assert tab.errors and _only_status(tab.errors, 422)

    # Edit: a broken definition is refused in place (422, message under the text area).
    tab.page.click("#edit-segment")
    tab.page.fill("#definition", json.dumps(INVALID))
    saved = f"/console/segments/{segment_id}"  # not the live preview's POST racing it
    with tab.page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(saved)
    ) as answer:
        tab.page.click("#save")
    assert answer.value.status == 422
    assert "definition.children[1].window.seconds" in problem.inner_text()
    assert _api(live, "GET", f"/v1/segments/{segment_id}", "read").json()["definition"] == VALID


def test_a_read_key_sees_no_write_links_and_is_refused_the_save(tab, live):
    everyone = {"type": "attribute", "path": "country", "op": "exists"}
    made = _api(live, "POST", "/v1/segments", "marketer",
                json={"name": "Anyone with a country", "definition": everyone})  # fmt: skip
    assert made.status_code == 201, made.text
    segment_id = made.json()["id"]
    tab.sign_in("read")
    tab.goto("/segments")
    assert tab.page.locator("#new-segment").count() == 0
    tab.goto(f"/segments/{segment_id}")
    assert tab.page.locator("#edit-segment").count() == 0
    # Members page by page (keyset on user id).
    first = tab.page.locator("#members tbody a").all_inner_texts()
    assert len(first) == 50
    tab.page.click("#members-next")
    second = tab.page.locator("#members tbody a").all_inner_texts()
    assert second and second[0] > first[-1]

    # The editor previews (a read operation) but its save is refused, as the API refuses it.
    tab.goto("/segments/new")
    assert tab.page.locator("#read-only").is_visible()
    tab.page.fill("#name", "Not allowed")
    with tab.page.expect_response(
        lambda r: r.request.method == "POST" and "preview" not in r.url
    ) as answer:
        tab.page.click("#save")
    assert answer.value.status == 403
    assert "role marketer" in tab.page.locator("main").inner_text()
    assert all(
        s["name"] != "Not allowed"
        for s in _api(live, "GET", "/v1/segments", "read").json()["segments"]
    )
    assert tab.errors and _only_status(tab.errors, 403)
