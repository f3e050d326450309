"""The A/B report attributes conversions to the last send within N days (holdout from its
assignment); erasure cancels enrolments and deletes sends and messages, keeping an anonymised
enrolment as the audit record."""

from __future__ import annotations

from sqlalchemy import func, select

from recsys.campaigns.report import campaign_report
from recsys.store import read_session
from recsys.store.campaigns import DueStepRow, EnrolmentRow, MessageRow, SendRow

DEFINITION = {
    "name": "AB",
    "trigger": {"type": "api"},
    "attribution_days": 3,
    "start": "ab",
    "steps": {
        "ab": {"type": "split", "arms": [{"name": "mail", "weight": 1, "next": "mail"},
                                          {"name": "holdout", "weight": 1, "holdout": True}]},
        "mail": {"type": "send", "channel": "email", "template": "t", "next": "later"},
        "later": {"type": "wait", "days": 30, "next": "again"},
        "again": {"type": "send", "channel": "email", "template": "t"},
    },
}  # fmt: skip


def _run(service, shop_store, make_worker, clock, users):
    service.put_template({"id": "t", "text": "hi"})
    service.create(DEFINITION, "ab", status="active")
    for user in users:
        shop_store.customers.put(user, {"email": f"{user}@x.org", "consents": {"email": True}})
    service.trigger("ab", users, now=clock.now)
    worker = make_worker()
    worker.run_once()
    return worker


def test_report_per_arm_with_uplift(service, shop_store, make_worker, clock, ingest, items):
    users = [f"r{i:03d}" for i in range(200)]
    _run(service, shop_store, make_worker, clock, users)
    with read_session(shop_store.engine) as s:
        arms = dict(s.execute(select(EnrolmentRow.user_id, EnrolmentRow.arm)).all())
    mailed = [u for u in users if arms[u] == "mail"]
    held = [u for u in users if arms[u] == "holdout"]
    clock.advance(days=1)
    for user in mailed[: len(mailed) // 2]:  # half the mailed buy within the window
        ingest(user, "purchase", items.item_id[2], clock.now, value=10.0)
    for user in held[:5]:
        ingest(user, "purchase", items.item_id[2], clock.now, value=10.0)
    clock.advance(days=5)
    ingest(held[6], "purchase", items.item_id[2], clock.now, value=10.0)  # outside 3 days
    report = campaign_report(shop_store.engine, "ab")
    by_arm = {a["arm"]: a for a in report["arms"]}
    mail, holdout = by_arm["mail"], by_arm["holdout"]
    assert mail["enrolled"] == len(mailed) and holdout["enrolled"] == len(held)
    assert mail["delivered"] == len(mailed) and holdout["sends"] == 0
    assert mail["conversions"] == len(mailed) // 2 and mail["revenue"] == 10.0 * (len(mailed) // 2)
    assert holdout["conversions"] == 5
    uplift = mail["uplift"]
    assert uplift["absolute"] > 0.3 and uplift["ci95"][0] > 0 and uplift["p_value"] < 1e-6
    assert holdout["uplift"] is None
    assert sum(d["conversions"] for d in report["days"]) == len(mailed) // 2 + 5


def test_erasure_cancels_and_deletes(service, shop_store, make_worker, clock):
    _run(service, shop_store, make_worker, clock, ["keep", "gone", "g2", "g3", "g4", "g5"])
    others = SendRow.user_id != "gone"
    with read_session(shop_store.engine) as s:
        before = s.scalar(select(func.count()).select_from(EnrolmentRow))
        kept = s.scalar(select(func.count()).where(others))
    receipt = shop_store.erase_user("gone", actor="test")
    assert receipt["deleted"]["campaigns"] >= 1
    with read_session(shop_store.engine) as s:
        for table in (SendRow, MessageRow, DueStepRow, EnrolmentRow):
            assert not s.scalar(select(func.count()).where(table.user_id == "gone"))
        anonymous = s.scalars(
            select(EnrolmentRow).where(EnrolmentRow.user_id.like("erased:%"))
        ).all()
        assert s.scalar(select(func.count()).select_from(EnrolmentRow)) == before
        assert s.scalar(select(func.count()).where(others)) == kept  # nobody else's
    assert len(anonymous) == 1 and anonymous[0].status == "cancelled"
    assert anonymous[0].context is None
