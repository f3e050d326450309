"""The fixed split on hand-made cases: dedupe, 20% floor, tie order, train-event summaries."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data import EVENTS
from recsys.data.errors import DataValidationError
from recsys.data.validate import validate_frame
from recsys.eval import first_occurrences, temporal_split
from recsys.eval.evaluate import encode_split


def events(rows) -> pd.DataFrame:
    """Canonical events from (user, item, unix seconds[, event type]) tuples."""
    rows = [tuple(r) + ("interaction",) * (4 - len(r)) for r in rows]
    raw = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])
    return validate_frame(raw, EVENTS)


def pairs(frame: pd.DataFrame, user: str = "u") -> list[str]:
    return frame.loc[frame["user_id"] == user, "item_id"].tolist()


def test_dedupe_keeps_the_first_occurrence():
    # a at t=1 and again at t=5, b at t=3: a's first occurrence (t=1) precedes b, so b is the
    # user's last pair and the one held out (keeping the last occurrence would hold out a).
    frame = events([("u", "a", 1), ("u", "b", 3), ("u", "a", 5)])
    first = first_occurrences(frame)
    assert list(
        zip(first["item_id"], first["timestamp"].astype("int64") // 10**9, strict=True)
    ) == [
        ("a", 1),
        ("b", 3),
    ]
    split = temporal_split(frame)
    assert pairs(split.train) == ["a"] and pairs(split.test) == ["b"]


@pytest.mark.parametrize(
    ("n_pairs", "n_test"),
    [(1, 1), (2, 1), (4, 1), (5, 1), (9, 1), (10, 2), (14, 2), (15, 3)],
)
def test_last_20_percent_floored_and_at_least_one(n_pairs, n_test):
    frame = events([("u", f"i{k}", 100 + k) for k in range(n_pairs)])
    split = temporal_split(frame)
    expected_test = [f"i{k}" for k in range(n_pairs - n_test, n_pairs)]  # the latest ones
    assert pairs(split.test) == expected_test
    assert pairs(split.train) == [f"i{k}" for k in range(n_pairs - n_test)]


def test_split_is_per_user():
    frame = events([("u", f"i{k}", k) for k in range(10)] + [("v", "i0", 50), ("v", "i1", 40)])
    split = temporal_split(frame)
    assert pairs(split.test, "u") == ["i8", "i9"]
    assert pairs(split.test, "v") == ["i0"]  # v's latest, regardless of u's times
    assert pairs(split.train, "v") == ["i1"]


def test_timestamp_ties_are_broken_by_item_id_in_natural_order():
    # Same second: numeric ids sort 9 < 10 < 100 (as text it would be "10" < "100" < "9").
    frame = events([("u", "10", 7), ("u", "100", 7), ("u", "9", 7), ("u", "5", 1)])
    split = temporal_split(frame)
    assert pairs(split.train) == ["5", "9", "10"] and pairs(split.test) == ["100"]


def test_text_ids_tie_in_text_order():
    frame = events([("u", "b", 7), ("u", "c", 7), ("u", "a", 7)])
    assert pairs(temporal_split(frame).test) == ["c"]


def test_mixed_ids_fall_back_to_text_order():
    frame = events([("u", "10", 7), ("u", "9", 7), ("u", "x", 7)])
    # "10" < "9" < "x" as text; one numeric-looking id does not make the order numeric
    assert pairs(temporal_split(frame).test) == ["x"]


def test_train_pairs_summarise_the_strongest_event_up_to_the_cutoff():
    frame = events(
        [
            ("u", "a", 1, "view"),
            ("u", "a", 2, "purchase"),  # a: view then purchase -> purchase, 2 events
            ("u", "b", 3, "add_to_cart"),
            ("u", "b", 9, "purchase"),  # after u's last training interaction (t=5): ignored
            ("u", "c", 4, "remove_from_cart"),
            ("u", "c", 4, "view"),  # same second: view outranks remove_from_cart
            ("u", "d", 5, "click"),
            ("u", "e", 8, "view"),  # the held-out pair (5 pairs -> 1 test)
        ]
    )
    split = temporal_split(frame)
    assert pairs(split.test) == ["e"]
    train = split.train.set_index("item_id")
    assert train.loc["a", "event_type"] == "purchase" and train.loc["a", "n_events"] == 2
    assert train.loc["b", "event_type"] == "add_to_cart" and train.loc["b", "n_events"] == 1
    assert train.loc["c", "event_type"] == "view" and train.loc["c", "n_events"] == 2
    assert train.loc["d", "event_type"] == "click" and train.loc["d", "n_events"] == 1
    assert train["timestamp"].is_monotonic_increasing  # first occurrences, in protocol order


def test_summary_without_event_types():
    raw = pd.DataFrame(
        {"user_id": ["u", "u", "u"], "item_id": ["a", "a", "b"], "timestamp": [1, 2, 3]}
    )
    split = temporal_split(
        raw.assign(timestamp=pd.to_datetime(raw["timestamp"], unit="s", utc=True))
    )
    assert split.train["n_events"].tolist() == [1] and pairs(split.test) == ["b"]


def test_users_with_one_interaction_have_no_training_pairs():
    split = temporal_split(events([("u", "a", 1), ("u", "b", 2), ("solo", "a", 3)]))
    assert pairs(split.test, "solo") == ["a"] and pairs(split.train, "solo") == []


def test_encode_split_drops_test_items_unseen_in_training():
    frame = events([("u", "a", 1), ("u", "b", 2), ("v", "b", 1), ("v", "new", 2)])
    split = temporal_split(frame)
    train, test = encode_split(split)
    assert train.item_ids.tolist() == ["a", "b"]  # only train items are candidates
    assert train.user_ids.tolist() == ["u", "v"]  # every user is encoded
    assert test["item_id"].tolist() == ["b"]  # v's test item "new" never occurs in training


def test_split_errors():
    with pytest.raises(DataValidationError, match="no interactions"):
        temporal_split(events([("u", "a", 1)]).iloc[:0])
    with pytest.raises(ValueError, match="test_fraction"):
        temporal_split(events([("u", "a", 1)]), test_fraction=1.0)
