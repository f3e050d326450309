"""The models and item pages in Debian's Chromium: an item's catalogue data, similar items,
"bought together" and affinity audience (marketers only); the models page over a local bundle
(said so) and over an MLflow registry with two versions: metrics side by side, the served one
marked, promote and reload for admin keys only."""

from __future__ import annotations

import pytest

from recsys.registry import CHAMPION, Registry
from recsys.store import Store
from tests.serving.console.conftest import ConsolePage, serve_console


def _register(registry: Registry, bundle_dir, metrics: dict) -> str:
    with registry.run(run_name="console-test"):
        registry.log_metrics(metrics)
        info = registry.log_bundle(bundle_dir)
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def registry_live(bundle_dir, live, tmp_path_factory):
    """The app serving ``models:/recsys@champion`` from a SQLite MLflow registry holding two
    versions (v1 champion), over its own store."""
    tmp = tmp_path_factory.mktemp("console-registry")
    tracking = f"sqlite:///{tmp / 'mlflow.db'}"
    registry = Registry(tracking, artifact_root=str(tmp / "artifacts"))
    first = _register(registry, bundle_dir, {"ndcg@20": 0.21, "recall@20": 0.30})
    _register(registry, bundle_dir, {"ndcg@20": 0.25, "recall@20": 0.33})
    registry.set_alias(CHAMPION, first)
    settings = live.settings.model_copy(update={
        "database_url": f"sqlite:///{tmp / 'recsys.db'}", "var_dir": str(tmp / "var"),
        "model_uri": "models:/recsys@champion", "mlflow_tracking_uri": tracking,
    })  # fmt: skip
    store = Store.open(settings.database_url)
    with serve_console(settings, store, "console-registry") as served:
        yield served


@pytest.fixture
def registry_tab(browser, registry_live):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield ConsolePage(page, registry_live)
    context.close()


def _listed(tab, list_id: str) -> list[str]:
    return tab.page.locator(f"#{list_id} li[data-item]").evaluate_all(
        "items => items.map(li => li.dataset.item)"
    )


def test_find_an_item_and_see_similar_together_and_audience(tab, live):
    item = live.store.items.search("i0", limit=1)[0]
    tab.sign_in("marketer")
    tab.page.click("nav >> text=Items")
    tab.page.fill("#q", item["item_id"])
    tab.page.click("form.search button")
    tab.page.wait_for_url(f"**/console/items/{item['item_id']}")
    assert tab.page.locator("#item-id").inner_text() == item["item_id"]
    assert item["title"] in tab.page.locator("#catalogue").inner_text()
    similar, together = _listed(tab, "similar"), _listed(tab, "together")
    assert len(similar) == 10 and item["item_id"] not in similar
    assert len(together) == 10 and item["item_id"] not in together
    audience = tab.page.locator("#audience tbody tr")
    assert audience.count() == 10
    assert audience.first.locator("a").get_attribute("href").startswith("/console/customers/")
    tab.screenshot("item")
    # a word of a title finds the item too
    tab.goto(f"/items?q={item['title'].split()[0]}")
    assert item["item_id"] in tab.page.locator("#found").inner_text()
    assert tab.errors == []


def test_a_read_key_sees_no_audience(tab, live):
    item = live.store.items.search("i0", limit=1)[0]
    tab.sign_in("read")
    tab.goto(f"/items/{item['item_id']}")
    assert len(_listed(tab, "similar")) == 10
    assert tab.page.locator("#audience").count() == 0
    assert "role marketer" in tab.page.locator("#audience-refused").inner_text()
    assert tab.errors == []


def test_models_page_over_a_local_bundle_says_so(tab, live):
    tab.sign_in("admin")
    tab.goto("/models")
    assert "local bundle directory" in tab.page.locator("#local-bundle").inner_text()
    assert tab.page.locator("#bundle-metrics tbody tr").count() >= 1
    assert tab.errors == []


def test_models_page_over_the_registry_promote_and_reload(registry_tab, registry_live):
    tab = registry_tab
    tab.sign_in("read")
    tab.goto("/models")
    assert tab.page.locator("#versions thead th[data-version]").evaluate_all(
        "ths => ths.map(th => th.dataset.version)"
    ) == ["2", "1"]
    served = tab.page.locator("#versions th.served")
    assert served.get_attribute("data-version") == "1" and "served" in served.inner_text()
    ndcg = tab.page.locator("#versions tr[data-metric='ndcg_at_20'] td").all_inner_texts()
    assert ndcg == ["0.2500", "0.2100"]
    assert tab.page.locator("#reload, form.promote").count() == 0  # not an admin
    assert "role admin" in tab.page.locator("#admin-only").inner_text()
    csrf = tab.page.evaluate("document.body.dataset.csrf")
    forged = tab.page.request.post(
        f"{registry_live.url}/console/models/promote", form={"csrf_token": csrf, "version": "2"}
    )
    assert forged.status == 403
    tab.errors.clear()

    tab.sign_in("admin")
    tab.goto("/models")
    tab.page.on("dialog", lambda dialog: dialog.accept())
    tab.page.click("#promote-2")
    tab.page.wait_for_url("**/console/models?done=*")
    assert "version 2 is now the champion" in tab.page.locator("#done").inner_text()
    aliases = tab.page.locator("#versions td.aliases[data-version='2']").inner_text()
    assert "champion" in aliases
    assert tab.page.locator("#served-version").inner_text() == "1"  # until the reload
    tab.page.click("#reload button")
    tab.page.wait_for_url("**/console/models?done=*")
    assert tab.page.locator("#served-version").inner_text() == "2"
    assert tab.page.locator("#versions th.served").get_attribute("data-version") == "2"
    tab.screenshot("models")
    actions = [e.action for e in registry_live.store.audit.list(10)]
    assert "model.promote" in actions and "model.reload" in actions
    assert tab.errors == []
