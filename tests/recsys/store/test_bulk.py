"""Bulk import on SQLite and PostgreSQL: all rows or none, profiles consistent with the events."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from recsys.data.errors import DataValidationError
from recsys.store.bulk import import_events, import_file, import_items, import_users

EVENTS_CSV = """user_id,item_id,timestamp,event_type,value,session_id,properties
u1,i1,2024-03-01T10:00:00Z,view,,s1,"{""device"": ""web""}"
u1,i2,2024-03-01T10:05:00Z,purchase,19.5,s1,
u2,i1,1709290000,add_to_cart,,,
u1,,2024-03-02T08:00:00+01:00,open,,,
u2,i3,2024-03-03T00:00:00Z,purchase,5,s9,
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_events_import_matches_the_event_path_and_its_profiles(store, tmp_path, make_events):
    # u1 already has events from the API path; the import must add to them, not replace them.
    store.events.append(make_events(3, users=1, prefix="api"))  # user-0
    store.events.append([{"user_id": "u1", "item_id": "i9", "event_type": "purchase",
                          "timestamp": "2024-02-01T00:00:00+00:00", "value": 1.0}])  # fmt: skip
    result = import_events(store, _write(tmp_path, "e.csv", EVENTS_CSV), progress=False)
    assert result.rows == 5 and result.profiles == 2 and result.kind == "events"
    assert store.events.count() == 9
    u1 = store.profiles.get("u1")
    assert u1["event_count"] == 4 and u1["purchase_count"] == 2 and u1["revenue"] == 20.5
    assert u1["first_seen"].isoformat() == "2024-02-01T00:00:00+00:00"
    assert u1["last_seen"].isoformat() == "2024-03-02T07:00:00+00:00"
    assert store.profiles.get("user-0")["event_count"] == 3  # not in the file: untouched
    recent = store.events.recent("u1", limit=10)
    assert recent[0]["event_type"] == "open" and recent[0]["item_id"] is None
    first = [e for e in recent if e["item_id"] == "i1"][0]
    assert first["properties"] == {"device": "web"} and first["session_id"] == "s1"
    assert first["timestamp"].isoformat() == "2024-03-01T10:00:00+00:00"
    frame = store.events.export_frame()
    assert len(frame) == 9 and set(frame["user_id"]) == {"user-0", "u1", "u2"}
    # After the import the event path keeps the aggregates current.
    store.events.append([{"user_id": "u2", "item_id": "i1", "timestamp": "2024-04-01T00:00:00Z"}])
    assert store.profiles.get("u2")["event_count"] == 3


@pytest.mark.parametrize("rebuild", [True, False])
def test_a_parquet_import_with_and_without_index_rebuild(store, tmp_path, rebuild):
    n = 2500
    frame = pd.DataFrame({
        "user_id": [f"u{i % 50}" for i in range(n)],
        "item_id": [f"i{i % 70}" for i in range(n)],
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
        "event_type": ["purchase" if i % 7 == 0 else "view" for i in range(n)],
        "value": [2.0 if i % 7 == 0 else None for i in range(n)],
    })  # fmt: skip
    path = tmp_path / "e.parquet"
    frame.to_parquet(path)
    import_events(store, path, progress=False, rebuild_indexes=rebuild)
    assert store.events.count() == n
    mine = frame[frame["user_id"] == "u3"]
    bought = mine[mine["event_type"] == "purchase"]
    u3 = store.profiles.get("u3")
    assert (u3["event_count"], u3["purchase_count"]) == (len(mine), len(bought))
    assert len(bought) > 0
    assert u3["revenue"] == bought["value"].sum() and u3["first_seen"] == mine["timestamp"].min()
    assert len(store.events.recent("u7", limit=100)) == 50  # the (user, time) index is there


@pytest.mark.parametrize(
    ("text", "row", "column", "words"),
    [
        ("u1,i1,2024-03-01T10:00:00Z,view\nu2,i2,soon,view\n", 2, "timestamp", "'soon'"),
        ("u1,i1,2024-03-01T10:00:00Z,view\nu2,i2,2024-03-01T10:00:00Z,buy\n", 2, "event_type",
         "unknown event type 'buy'"),
        ("u1,i1,2024-03-01T10:00:00Z,view\n" + "x" * 300 + ",i2,2024-03-01T10:00:00Z,view\n", 2,
         "user_id", "longer than 255"),
    ],
)  # fmt: skip
def test_a_bad_row_imports_nothing(store, tmp_path, text, row, column, words):
    path = _write(tmp_path, "e.csv", "user_id,item_id,timestamp,event_type\n" + text)
    with pytest.raises(DataValidationError) as caught:
        import_events(store, path, progress=False)
    assert (caught.value.row, caught.value.column) == (row, column)
    assert words in str(caught.value) and f"line {row + 1}" in str(caught.value)
    assert store.events.count() == 0 and store.profiles.count() == 0


def test_items_and_users_files_are_upserted(store, tmp_path):
    store.items.upsert([{"item_id": "a", "title": "Old", "price": 3.0}])
    items = "item_id,title,category,stock\na,Mug,kitchen,0\nb,Pan,kitchen,4\n"
    result = import_items(store, _write(tmp_path, "i.csv", items), progress=False)
    assert result.rows == 2
    a = store.items.get("a")
    assert (a["title"], a["price"], a["stock"], a["in_stock"]) == ("Mug", 3.0, 0, False)
    assert store.items.get("b")["in_stock"] is True
    users = ('user_id,email,time_zone,consents\n'
             'u1,u1@example.com,Europe/Paris,"{""email"": true}"\nu2,,UTC,\n')  # fmt: skip
    import_users(store, _write(tmp_path, "u.csv", users), progress=False)
    u1 = store.customers.get("u1")
    assert u1["time_zone"] == "Europe/Paris" and u1["consents"] == {"email": True}
    bad = "user_id,email\nu3,u3@example.com\nu4,not-an-address\n"
    with pytest.raises(DataValidationError, match="row 2 .line 3., column 'email'"):
        import_file(store, "users", _write(tmp_path, "bad.csv", bad), progress=False)
    assert store.customers.get("u3") is None
    with pytest.raises(DataValidationError, match="consents.sms must be true or false"):
        import_users(store, _write(tmp_path, "c.csv", 'user_id,consents\nu5,"{""sms"": 1}"\n'),
                     progress=False)  # fmt: skip


def _aggregates(store):
    from recsys.store import read_session
    from recsys.store.profile_aggregates import CustomerAggregate, as_state, recompute

    with read_session(store.engine) as session:
        batch = recompute(session)
        rows = {u: session.get(CustomerAggregate, u) for u in batch}
        stored = {u: (as_state(r), r.seq, r.pending) for u, r in rows.items()}
    return batch, stored


def test_import_folds_segment_aggregates_like_the_event_path(store, tmp_path):
    rng = random.Random(3)
    store.items.upsert([{"item_id": f"i{k}", "category": f"c{k % 3}"} for k in range(6)])
    kinds = ["view", "add_to_cart", "remove_from_cart", "purchase"]
    t0 = pd.Timestamp("2024-05-01T09:00:00Z")

    def event(_):
        return {"user_id": f"u{rng.randrange(6)}", "item_id": f"i{rng.randrange(7)}",
                "event_type": rng.choice(kinds), "quantity": rng.randrange(1, 4),
                "timestamp": t0 + pd.Timedelta(minutes=rng.randrange(-500, 500)),
                "value": round(rng.uniform(1, 90), 2)}  # fmt: skip

    store.events.append([event(n) for n in range(120)])  # stored state to fold onto
    frame = pd.DataFrame([event(n) for n in range(400)])
    frame.loc[5, "value"] = None
    frame.loc[7, ["item_id", "event_type"]] = ["", "open"]
    frame.to_parquet(tmp_path / "e.parquet")
    import_events(store, tmp_path / "e.parquet", progress=False)
    batch, stored = _aggregates(store)
    assert batch and set(batch) == set(stored)
    for user, state in batch.items():
        got, seq, pending = stored[user]
        assert pending is True and seq == store.profiles.get(user)["event_count"]
        spend = got.pop("category_spend")
        assert spend == pytest.approx(state.pop("category_spend")), user
        for line in [*got["cart"].values(), *state["cart"].values()]:
            line["value"] = round(line["value"], 6)
        assert got == state, user
    assert any(state["cart"] for state, _, _ in stored.values())


@pytest.mark.parametrize("rebuild", [True, False])
def test_event_ids_make_a_reimport_skip_stored_events(store, tmp_path, rebuild):
    store.events.append([{"user_id": "u1", "item_id": "i1", "event_id": "e-1",
                          "timestamp": "2024-03-01T09:00:00Z"}])  # fmt: skip
    text = ("event_id,user_id,item_id,timestamp\n"
            "e-1,u1,i1,2024-03-01T09:00:00Z\ne-2,u1,i2,2024-03-01T10:00:00Z\n"
            "e-2,u1,i2,2024-03-01T10:00:00Z\n,u2,i2,2024-03-01T11:00:00Z\n")  # fmt: skip
    path = _write(tmp_path, "e.csv", text)
    first = import_events(store, path, progress=False, rebuild_indexes=rebuild)
    assert (first.rows, first.skipped) == (2, 2)
    again = import_events(store, path, progress=False, rebuild_indexes=rebuild)
    assert (again.rows, again.skipped) == (1, 3)  # only the event without an id again
    assert store.events.count() == 4 and store.profiles.get("u1")["event_count"] == 2
    assert store.profiles.get("u2")["event_count"] == 2
    too_long = _write(tmp_path, "x.csv", "event_id,user_id,item_id,timestamp\n"
                      f"{'x' * 129},u1,i1,2024-03-01T09:00:00Z\n")  # fmt: skip
    with pytest.raises(DataValidationError, match="column 'event_id'.*longer than 128"):
        import_events(store, too_long, progress=False)
