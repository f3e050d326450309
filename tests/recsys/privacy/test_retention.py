"""Retention deletes each kind after its own period; training drops expired events too."""

from __future__ import annotations

from datetime import timedelta

from recsys.data.frame import pd
from recsys.privacy import PrivacySettings, drop_expired, run_retention
from recsys.store.tables import AuditEntry


def test_each_kind_has_its_own_retention(engine, store, make_events, t0):
    store.events.append(make_events(30))  # one a minute from t0
    with store.engine.begin() as conn:
        conn.execute(AuditEntry.__table__.insert(), [
            {"at": t0 - timedelta(days=d), "actor": "a", "action": "x", "target": ""}
            for d in (1, 40, 400)
        ])  # fmt: skip
    now = t0 + timedelta(days=10, minutes=15)
    settings = PrivacySettings(
        retention_events_days=10, retention_messages_days=30, retention_audit_days=365
    )
    report = run_retention(engine, settings, now=now)
    assert report["events"]["deleted"] == {"events": 15}
    assert report["audit"]["deleted"] == {"audit_log": 1}  # only the 400-day-old entry
    assert store.events.count() == 15
    assert set(report["messages"]["deleted"]) == {"campaign_messages", "campaign_dead_letters"}
    keep_all = PrivacySettings(retention_events_days=0, retention_audit_days=0)
    later = run_retention(engine, keep_all, now=now + timedelta(days=3650))
    assert later["events"]["deleted"] == {}
    assert store.events.count() == 15


def test_training_frames_never_hold_expired_events(t0):
    frame = pd.DataFrame(
        {"user_id": ["a", "b", "c"],
         "timestamp": pd.to_datetime([t0 - timedelta(days=100), t0, t0], utc=True)}
    )  # fmt: skip
    settings = PrivacySettings(retention_events_days=30)
    kept = drop_expired(frame, settings, now=t0 + timedelta(days=1))
    assert kept["user_id"].tolist() == ["b", "c"]
    assert drop_expired(frame, PrivacySettings(retention_events_days=0)) is frame


def test_training_from_the_store_never_sees_expired_events(tmp_path, monkeypatch):
    from recsys.store import Store
    from recsys.store.tables import utcnow
    from training.config import parse_config
    from training.data import load_training_data

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    store = Store.open(url)
    now = utcnow()
    store.events.append([
        {"event_id": f"e{d}", "user_id": f"u{d}", "item_id": "i1", "event_type": "purchase",
         "timestamp": now - timedelta(days=d)} for d in (1, 5, 90)
    ])  # fmt: skip
    store.close()
    monkeypatch.setenv("RECSYS_RETENTION_EVENTS_DAYS", "30")
    config = parse_config({"data": {"source": "store", "database_url": url}})
    users = set(load_training_data(config).events["user_id"].astype(str))
    assert users == {"u1", "u5"}  # u90's event is past retention, though not deleted yet
