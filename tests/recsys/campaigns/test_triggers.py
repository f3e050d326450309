"""Segment and schedule triggers, the per-campaign rate limit and pausing, on both backends."""

from __future__ import annotations

from sqlalchemy import select

from recsys.segments.service import SegmentService
from recsys.store import read_session
from recsys.store.campaigns import EnrolmentRow, SendRow


def _mail(template="t"):
    return {"type": "send", "channel": "email", "template": template}


def _customers(store, users):
    for user in users:
        store.customers.put(user, {"email": f"{user}@x.org", "consents": {"email": True}})


def _sent(store, campaign_id):
    with read_session(store.engine) as s:
        stmt = select(SendRow.user_id).where(SendRow.campaign_id == campaign_id)
        return sorted(s.scalars(stmt.where(SendRow.status == "sent")))


def test_segment_entry_enrols_from_the_outbox_position(service, shop_store, make_worker, clock):
    service.put_template({"id": "t", "text": "hi"})
    segments = SegmentService(
        shop_store,
    )
    segments.save_static("Early", [("a", None)], segment_id="early")  # before the campaign
    definition = {"name": "On entry", "trigger": {"type": "segment", "segment_id": "vip"},
                  "start": "m", "steps": {"m": _mail()}}  # fmt: skip
    segments.save_static("VIP", [("b", None), ("c", None)], segment_id="vip")
    service.create(definition, "entry", status="active")
    _customers(shop_store, "abc")
    worker = make_worker()
    worker.run_once()
    assert _sent(shop_store, "entry") == ["b", "c"]
    worker.run_once()  # the position was recorded: nothing consumed twice
    assert _sent(shop_store, "entry") == ["b", "c"]


def test_schedule_rate_limit_and_pause(service, shop_store, make_worker, clock):
    service.put_template({"id": "t", "text": "hi"})
    users = [f"s{i}" for i in range(5)]
    _customers(shop_store, users)
    definition = {"name": "Hourly", "trigger": {"type": "schedule", "interval_seconds": 3600},
                  "reentry": {"policy": "always"}, "rate_limit_per_minute": 2,
                  "start": "m", "steps": {"m": _mail()}}  # fmt: skip
    service.create(definition, "hourly", status="active")
    worker = make_worker()
    worker.sends.settings = worker.sends.settings.model_copy(update={"frequency_cap": 100})
    worker.run_once()
    assert len(_sent(shop_store, "hourly")) == 2  # the rest wait for the next minute
    clock.advance(minutes=1)
    worker.run_once()
    assert len(_sent(shop_store, "hourly")) == 4
    service.set_status("hourly", "paused")
    clock.advance(minutes=1)
    worker.run_once()
    assert len(_sent(shop_store, "hourly")) == 4  # paused: the due step waits
    service.set_status("hourly", "active")
    clock.advance(minutes=1)
    worker.run_once()
    assert len(_sent(shop_store, "hourly")) == 5
    clock.advance(minutes=57)  # the next hourly run enrols everyone again
    worker.run_once()
    with read_session(shop_store.engine) as s:
        runs = s.scalars(select(EnrolmentRow.user_id).where(EnrolmentRow.campaign_id == "hourly"))
        assert len(list(runs)) == 10
