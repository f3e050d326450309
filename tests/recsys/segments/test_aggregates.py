"""Profile aggregates for segments: kept in the event transaction, equal to a batch recompute."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from recsys.store import read_session
from recsys.store.profile_aggregates import STATE_FIELDS, CustomerAggregate, as_state, recompute

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _event(user, item, kind, minutes, value=None, quantity=1):
    return {
        "user_id": user,
        "item_id": item,
        "event_type": kind,
        "timestamp": T0 + timedelta(minutes=minutes),
        "value": value,
        "quantity": quantity,
    }


def _stored(engine, user):
    with read_session(engine) as session:
        return session.get(CustomerAggregate, user)


def test_cart_categories_and_last_times(store, engine):
    store.items.upsert(
        [{"item_id": "shoe", "category": "shoes"}, {"item_id": "hat", "category": "hats"}]
    )
    store.events.append(
        [
            _event("u", "shoe", "add_to_cart", 0, value=50.0, quantity=2),
            _event("u", "hat", "add_to_cart", 1, value=20.0),
            _event("u", "shoe", "remove_from_cart", 2, quantity=1),
            _event("u", "hat", "purchase", 3, value=20.0),
            _event("u", "hat", "purchase", 4, value=25.0),
            _event("u", "nowhere", "view", 5),
        ]
    )
    row = _stored(engine, "u")
    assert row.cart == {"shoe": {"quantity": 1, "value": 25.0}}  # half removed, hat bought
    assert (row.cart_quantity, row.cart_value) == (1, 25.0)
    assert row.category_purchases == {"hats": 2}
    assert row.category_spend == {"hats": 45.0}
    assert row.last_purchase_at == T0 + timedelta(minutes=4)
    assert set(row.last_event) == {"add_to_cart", "remove_from_cart", "purchase", "view"}
    assert row.seq == 6 and row.pending is True


def test_batch_recompute_equals_the_real_time_aggregates(store, engine):
    rng = random.Random(5)
    store.items.upsert([{"item_id": f"i{k}", "category": f"c{k % 3}"} for k in range(6)])
    kinds = ["view", "add_to_cart", "remove_from_cart", "purchase"]
    events = [
        _event(
            f"u{rng.randrange(8)}",
            f"i{rng.randrange(7)}",  # i6 is not in the catalogue
            rng.choice(kinds),
            rng.randrange(-500, 500),  # out of time order on purpose
            value=round(rng.uniform(1, 90), 2),
            quantity=rng.randrange(1, 4),
        )
        for _ in range(300)
    ]
    for start in range(0, 300, 37):  # several batches, like separate POSTs
        store.events.append(events[start : start + 37])
    with read_session(engine) as session:
        batch = recompute(session)
        stored = {u: as_state(session.get(CustomerAggregate, u)) for u in batch}
    assert len(batch) == 8
    for user, state in batch.items():
        for name in STATE_FIELDS:
            if name in ("cart_value",):
                assert abs(state[name] - stored[user][name]) < 1e-6, (user, name)
            elif name == "cart":
                assert state[name].keys() == stored[user][name].keys()
                for item, line in state[name].items():
                    assert line["quantity"] == stored[user][name][item]["quantity"]
                    assert abs(line["value"] - stored[user][name][item]["value"]) < 1e-6
            else:
                assert state[name] == stored[user][name], (user, name)


def test_erasure_removes_the_aggregates(store, engine):
    store.events.append([_event("gone", "x", "view", 0)])
    receipt = store.erase_user("gone", actor="test")
    assert receipt["deleted"]["customer_aggregates"] == 1
    assert _stored(engine, "gone") is None
