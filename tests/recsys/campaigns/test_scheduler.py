"""The durable scheduler on both backends: enrol from events, wait on the injected clock, exit on
purchase, send once with in-stock recommendations; guards; wait_until, branch, split."""

from __future__ import annotations

from sqlalchemy import select

from recsys.store import read_session
from recsys.store.campaigns import EnrolmentRow, SendRow
from tests.recsys.campaigns.conftest import CART_TEMPLATE, T0, cart_campaign


def _setup(service, store, definition, users=("a", "b", "c")):
    service.put_template(CART_TEMPLATE)
    service.create(definition, "cart", status="active")
    for user in users:
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})


def _sends(store):
    with read_session(store.engine) as s:
        return list(s.scalars(select(SendRow).order_by(SendRow.id)))


def test_cart_abandonment_sends_once_after_the_hour(service, shop_store, ingest, make_worker,
                                                    clock, items):  # fmt: skip
    _setup(service, shop_store, cart_campaign())
    shop_store.customers.put("c", {"consents": {"email": False}})
    item = items.item_id[0]
    for user in ("a", "b", "c"):
        ingest(user, "add_to_cart", item, clock.now)
    worker = make_worker()
    assert worker.run_once()["events"] == 3
    clock.advance(minutes=30)
    ingest("b", "purchase", item, clock.now, value=5.0)  # the buyer
    assert worker.run_once()["sent"] == 0  # nothing before the hour
    clock.advance(minutes=29, seconds=59)
    assert worker.run_once()["sent"] == 0
    clock.advance(seconds=1)
    counts = worker.run_once()
    assert counts["sent"] == 1 and counts["suppressed"] == 1  # a sent, c held back (consent)
    sends = {s.user_id: s for s in _sends(shop_store)}
    assert set(sends) == {"a", "c"}
    assert sends["a"].status == "sent" and sends["c"].reason == "no consent"
    assert len(sends["a"].items) == 3 and item not in sends["a"].items
    stock = {i["item_id"]: i["in_stock"] for i in map(shop_store.items.get, sends["a"].items)}
    assert all(stock.values())
    (message,) = shop_store.campaigns.messages(user_id="a")
    assert message["recipient"] == "a@example.com" and "/v1/unsubscribe?token=" in message["text"]
    clock.advance(days=1)
    assert worker.run_once()["sent"] == 0  # nothing twice
    with read_session(shop_store.engine) as s:
        status = dict(s.execute(select(EnrolmentRow.user_id, EnrolmentRow.status)).all())
    assert status == {"a": "completed", "b": "exited", "c": "completed"}


def test_recommendations_drop_out_of_stock_and_recently_sent(
    service, shop_store, ingest, make_worker, clock, items
):
    _setup(service, shop_store, cart_campaign(), users=("a",))
    item = items.item_id[0]
    ingest("a", "add_to_cart", item, clock.now)
    worker = make_worker()
    worker.run_once()
    clock.advance(hours=1)
    worker.run_once()
    first = _sends(shop_store)[0].items
    shop_store.items.upsert([{"item_id": first[0], "stock": 0}])
    clock.advance(hours=1)
    ingest("a", "add_to_cart", item, clock.now)  # re-entry "always": a second enrolment
    worker.run_once()
    clock.advance(hours=1)
    worker.run_once()
    second = _sends(shop_store)[1].items
    assert second and not set(second) & set(first)  # out of stock and already sent both gone


def test_frequency_cap_and_quiet_hours(service, shop_store, ingest, make_worker, clock, items):
    definition = cart_campaign(quiet_hours={"start": "21:00", "end": "08:00"})
    _setup(service, shop_store, definition, users=("a", "tokyo"))
    shop_store.customers.put("tokyo", {"time_zone": "Asia/Tokyo"})  # 21:00 there at T0 + 1 h
    worker = make_worker()
    for round_ in range(3):
        for user in ("a", "tokyo"):
            ingest(user, "add_to_cart", items.item_id[round_], clock.now)
        worker.run_once()
        clock.advance(hours=1)
        worker.run_once()
        clock.advance(hours=1)
    sends = _sends(shop_store)
    a = [s.status for s in sends if s.user_id == "a"]
    assert a == ["sent", "sent", "suppressed"]  # cap: 2 e-mails in 7 days
    assert [s.user_id for s in sends].count("tokyo") == 0  # quiet in Tokyo: waiting, not dropped
    clock.now = T0.replace(hour=23, minute=0, second=1)  # 08:00:01 in Tokyo
    worker.run_once()
    tokyo = [s for s in _sends(shop_store) if s.user_id == "tokyo"]
    # One message at 08:00 (the later add_to_cart events found the enrolment still active).
    assert [(s.status, s.created_at) for s in tokyo] == [("sent", clock.now)]


def test_wait_until_branch_and_split(service, shop_store, ingest, make_worker, clock, items):
    service.put_template(CART_TEMPLATE)
    definition = {
        "name": "Welcome",
        "trigger": {"type": "api"},
        "start": "vip",
        "steps": {
            "vip": {"type": "branch", "condition": {"field": "attributes.vip", "value": True},
                    "if_true": "ab", "if_false": "view"},
            "view": {"type": "wait_until", "event": {"event_type": "view"},
                     "timeout_seconds": 3600, "on_match": "ab", "on_timeout": None},
            "ab": {"type": "split", "arms": [
                {"name": "mail", "weight": 1, "next": "mail"},
                {"name": "holdout", "weight": 1, "holdout": True}]},
            "mail": {"type": "send", "channel": "email", "template": "cart",
                     "recommendations": {"k": 2}},
        },
    }  # fmt: skip
    service.create(definition, "welcome", status="active")
    users = [f"u{i}" for i in range(40)]
    for user in users:
        shop_store.customers.put(
            user, {"email": f"{user}@example.com", "consents": {"email": True},
                   "attributes": {"vip": user < "u2"}},
        )  # fmt: skip
    result = service.trigger("welcome", users, now=clock.now)
    assert result["enrolled"] == 40
    assert service.trigger("welcome", users, now=clock.now)["enrolled"] == 0  # re-entry: once
    worker = make_worker()
    worker.run_once()
    ingest("u5", "view", items.item_id[1], clock.now)
    clock.advance(minutes=10)
    worker.run_once()
    with read_session(shop_store.engine) as s:
        arms = dict(s.execute(select(EnrolmentRow.user_id, EnrolmentRow.arm)).all())
    passed = {u for u, arm in arms.items() if arm}
    assert passed == {"u0", "u1", "u10", "u11", "u12", "u13", "u14", "u15", "u16", "u17",
                      "u18", "u19", "u5"}  # vips (u0, u1, u1x) and the viewer  # fmt: skip
    sent = {s.user_id for s in _sends(shop_store)}
    assert sent == {u for u in passed if arms[u] == "mail"} and 0 < len(sent) < len(passed)
    clock.advance(hours=1)
    worker.run_once()
    with read_session(shop_store.engine) as s:
        left = s.scalars(select(EnrolmentRow.status).where(EnrolmentRow.user_id == "u7")).one()
    assert left == "completed"  # timed out, nothing sent


def test_events_from_before_the_campaign_went_live_do_not_enrol(
    service, shop_store, ingest, make_worker, clock, items
):
    item = items.item_id[0]
    ingest("old", "add_to_cart", item, clock.now)  # history: e.g. sample data loaded first
    _setup(service, shop_store, cart_campaign(), users=("old", "new"))
    ingest("new", "add_to_cart", item, clock.now)
    worker = make_worker()
    worker.run_once()
    clock.advance(hours=1)
    worker.run_once()
    assert [s.user_id for s in _sends(shop_store)] == ["new"]
