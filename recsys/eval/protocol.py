"""The fixed evaluation protocol (numbers are comparable only under it).

1. Every interaction counts once per (user, item) pair: the first occurrence is kept.
2. Per user, pairs are sorted by (timestamp, item_id) — ids in natural order — and the last
   floor(20%), at least one, are test; the rest are train.
3. Candidates are all items that occur in training, minus the user's own training items.
4. Users count when at least one of their test items occurs in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.interactions import natural_order

TEST_FRACTION = 0.2

# Which event of a (user, item) pair says the most, strongest first; the train table keeps it.
EVENT_STRENGTH = (
    "purchase", "add_to_cart", "wishlist", "rate", "click", "view", "interaction",
    "remove_from_cart", "open",
)  # fmt: skip


def _ordered(events: pd.DataFrame) -> pd.DataFrame:
    """Events sorted by (user, timestamp, item) with ids in natural order."""
    frame = events.assign(
        _u=natural_order(events["user_id"]),
        _i=natural_order(events["item_id"]),
    )
    return frame.sort_values(["_u", "timestamp", "_i"], kind="mergesort")


def first_occurrences(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item) pair: its first occurrence, in protocol order."""
    frame = _ordered(events)
    frame = frame.drop_duplicates(["user_id", "item_id"], keep="first")
    return frame.drop(columns=["_u", "_i"]).reset_index(drop=True)


@dataclass
class TemporalSplit:
    """Train and test pairs under the fixed protocol.

    ``train`` has one row per (user, item) pair (first occurrence) with two extra columns
    summarising the user's events on that pair up to the user's last training interaction:
    ``event_type`` is the strongest one and ``n_events`` how many there were. ``test`` has one
    row per held-out pair.
    """

    train: pd.DataFrame
    test: pd.DataFrame


def temporal_split(events: pd.DataFrame, test_fraction: float = TEST_FRACTION) -> TemporalSplit:
    """Split canonical events per user by time: the last ``test_fraction`` of pairs are test."""
    if events.empty:
        raise DataValidationError("<interactions>", "no interactions to split")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    pairs = first_occurrences(events)
    rank = pairs.groupby("user_id", sort=False).cumcount().to_numpy()
    size = pairs.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    n_test = np.maximum(1, np.floor(test_fraction * size)).astype(np.int64)
    is_test = rank >= size - n_test
    train = pairs.loc[~is_test].reset_index(drop=True)
    test = pairs.loc[is_test, ["user_id", "item_id", "timestamp"]].reset_index(drop=True)
    return TemporalSplit(_summarise_train_events(events, train), test)


def interaction_pairs(events: pd.DataFrame) -> pd.DataFrame:
    """Every (user, item) pair once, summarised like ``TemporalSplit.train`` but over all events:
    what a model is fitted on when nothing is held out (the final fit of a training job)."""
    if events.empty:
        raise DataValidationError("<interactions>", "no interactions")
    return _summarise_train_events(events, first_occurrences(events))


def _summarise_train_events(events: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Strongest event type and event count per train pair, up to the user's training cut-off."""
    if "event_type" not in events or train.empty:
        return train.assign(n_events=1)
    cutoff = train.groupby("user_id")["timestamp"].max().rename("_cutoff")
    raw = events[["user_id", "item_id", "timestamp", "event_type"]].merge(
        cutoff, left_on="user_id", right_index=True
    )
    raw = raw[raw["timestamp"] <= raw["_cutoff"]]
    raw = raw.merge(train[["user_id", "item_id"]], on=["user_id", "item_id"])
    strength = {name: rank for rank, name in enumerate(EVENT_STRENGTH)}
    raw = raw.assign(_s=raw["event_type"].map(strength).fillna(len(strength)).astype(int))
    summary = raw.groupby(["user_id", "item_id"], sort=False).agg(
        _s=("_s", "min"), n_events=("_s", "size")
    )
    names = np.asarray(EVENT_STRENGTH + ("interaction",), dtype=object)
    summary["event_type"] = names[summary["_s"].to_numpy()]
    merged = train.drop(columns=["event_type"]).merge(
        summary[["event_type", "n_events"]],
        left_on=["user_id", "item_id"],
        right_index=True,
        how="left",
    )
    merged["event_type"] = merged["event_type"].fillna(train["event_type"])
    merged["n_events"] = merged["n_events"].fillna(1).astype("int64")
    return merged[list(train.columns) + ["n_events"]]
