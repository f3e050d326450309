"""`recsys keys create --rate` and `recsys retention run` through the real command."""

from __future__ import annotations

import json
from datetime import timedelta

from recsys.store import Store
from recsys.store.key_rates import KeyRateStore
from recsys.store.tables import utcnow
from tests.recsys_cli.conftest import _isolated, recsys  # noqa: F401  (fixtures)


def test_keys_create_with_rates_and_a_bad_rate_names_the_option(recsys, tmp_path):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    made = recsys("keys", "create", "--role", "read", "--name", "shop", "--rate", "100/s",
                  "--ingest-rate", "600/min", "--database-url", url, "--json")  # fmt: skip
    assert made.code == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["name"] == "shop" and key["rate_per_second"] == {"read": 100.0, "ingest": 10.0}
    store = Store.open(url)
    try:
        rates = KeyRateStore(store.engine).get(key["id"])
    finally:
        store.close()
    assert (rates.read, rates.ingest) == (100.0, 10.0)
    bad = recsys("keys", "create", "--role", "read", "--rate", "fast", "--database-url", url)
    assert bad.code == 2 and "--rate" in bad.stderr and "100/s" in bad.stderr


def test_retention_run_deletes_expired_events(recsys, tmp_path, monkeypatch):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(url)
    now = utcnow()
    store.events.append([
        {"event_id": f"e{d}", "user_id": "u1", "item_id": "i1", "event_type": "view",
         "timestamp": now - timedelta(days=d)} for d in (1, 20, 400)
    ])  # fmt: skip
    store.close()
    monkeypatch.setenv("RECSYS_RETENTION_EVENTS_DAYS", "10")
    done = recsys("retention", "run", "--database-url", url, "--json")
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["retention"]["events"]["deleted"] == {"events": 2}
    assert report["scrubs"] == {"done": 0, "pending": 0}
    plain = recsys("retention", "run", "--database-url", url)
    assert "events" in plain.stdout and "scrubs" in plain.stdout
