"""A request's user state: the history stored with the model plus the events passed in."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from recsys.data.frame import pd
from recsys.models.blend import UserState


def as_events(events) -> tuple[list, list, list]:
    """(item ids, unix seconds, event types) of stored events (dicts or a frame)."""
    if events is None:
        return [], [], []
    if isinstance(events, pd.DataFrame):
        events = events.to_dict("records")
    items, times, types = [], [], []
    for event in events:
        item = event.get("item_id")
        if item is None or item == "":
            continue
        ts = event.get("timestamp")
        if hasattr(ts, "timestamp"):
            ts = ts.timestamp()
        elif isinstance(ts, str):
            ts = pd.Timestamp(ts).timestamp()
        items.append(str(item))
        times.append(float(ts) if ts is not None else time.time())
        types.append(str(event.get("event_type") or "interaction"))
    return items, times, types


def lookup(index: pd.Index, ids: Sequence[str]) -> np.ndarray:
    """Positions of ``ids`` in a unique ``index`` (-1 = absent); hash look-ups for short lists
    (``get_indexer`` costs about a millisecond per call, ``get_loc`` microseconds)."""
    if len(ids) > 64:
        return index.get_indexer(list(ids))
    out = np.full(len(ids), -1, dtype=np.int64)
    for row, value in enumerate(ids):
        try:
            out[row] = index.get_loc(value)
        except (KeyError, TypeError):
            pass
    return out


def merge_events(stored: UserState | None, events, items: pd.Index, now=None) -> UserState:
    """``stored`` (a known user's history, or None) followed by ``events``, in time order.

    Events on items the model does not know are skipped, and so are events identical (item,
    time, type) to one already stored with the model.
    """
    user = None if stored is None else stored.user
    held = np.zeros(0, dtype=np.int64)
    times = np.zeros(0, dtype=np.float64)
    types = np.zeros(0, dtype=object)
    if stored is not None:
        held = np.asarray(stored.items, dtype=np.int64)
        times = np.asarray(stored.timestamps, dtype=np.float64)
        types = np.asarray(stored.event_types, dtype=object)
    ids, live_times, live_types = as_events(events)
    if ids:
        fresh = []
        for position, ts, kind in zip(lookup(items, ids), live_times, live_types, strict=True):
            if position < 0:
                continue
            if not ((held == position) & (times == ts) & (types == kind)).any():
                fresh.append((position, ts, kind))
        if fresh:
            new_items, new_times, new_types = zip(*fresh, strict=True)
            held = np.concatenate([held, np.asarray(new_items, dtype=np.int64)])
            times = np.concatenate([times, np.asarray(new_times, dtype=np.float64)])
            types = np.concatenate([types, np.asarray(new_types, dtype=object)])
    order = np.argsort(times, kind="stable")
    return UserState(user, held[order], times[order], list(types[order]), now=now)
