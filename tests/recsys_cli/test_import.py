"""`recsys import`: a generated shop into a fresh store; a bad file is one error line, exit 2."""

from __future__ import annotations

import json

from recsys.store import Store


def test_import_a_generated_shop(recsys, shop, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    summaries = {}
    for kind in ("items", "users", "events"):
        result = recsys("import", kind, str(shop / f"{kind}.parquet"), "--database-url", url,
                        "--json", "--no-progress")  # fmt: skip
        assert result.code == 0, result.stderr
        summaries[kind] = json.loads(result.stdout)
    store = Store.open(url)
    try:
        assert store.events.count() == summaries["events"]["rows"] > 0
        assert store.items.count() == summaries["items"]["rows"] == 40
        assert store.profiles.count() == 120
        user = store.events.user_ids()[0]
        profile = store.customers.get(user)
        assert profile["email"] and profile["event_count"] == len(store.events.recent(user, 10**6))
    finally:
        store.close()
    text = recsys("import", "items", str(shop / "items.parquet"), "--database-url", url,
                  "--no-progress")  # fmt: skip
    assert text.code == 0 and text.stdout.startswith("imported 40 items from")


def test_a_bad_file_is_one_error_line_and_imports_nothing(recsys, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,2024-01-01T00:00:00Z\nu2,i2,yesterday\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = recsys("import", "events", str(path), "--database-url", url, "--no-progress")
    assert result.code == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: {path}, row 2 (line 3), column 'timestamp': cannot parse timestamp 'yesterday'"
        )
    )
    store = Store.open(url)
    assert store.events.count() == 0
    store.close()
    wrong = recsys("import", "orders", str(path), "--database-url", url)
    assert wrong.code == 2 and "orders" in wrong.stderr
