"""Tiny synthetic interaction data with planted structure, for fast model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.interactions import Interactions

START = 1_700_000_000.0


def make_events(
    n_users: int = 40,
    n_items: int = 30,
    length: int = 10,
    seed: int = 0,
    event_types=("interaction",),
    session_length: int | None = None,
) -> pd.DataFrame:
    """Each user walks the item chain ``s, s+1, s+2, ...`` (mod n_items) from a random start.

    The chain is a strong next-item signal; ``event_types`` are cycled over the events and
    ``session_length`` groups consecutive events into sessions when given.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        t0 = START + u * 7 * 86_400
        for step in range(length):
            item = (start + step) % n_items
            rows.append(
                {
                    "user_id": f"u{u:03d}",
                    "item_id": f"i{item:03d}",
                    "timestamp": t0 + step * 3600.0,
                    "event_type": event_types[step % len(event_types)],
                    "session_id": (f"u{u:03d}-s{step // session_length}" if session_length else ""),
                }
            )
    return pd.DataFrame(rows)


def make_interactions(**kwargs) -> Interactions:
    """``make_events`` encoded (all users, all items)."""
    return Interactions.from_frame(make_events(**kwargs))


def make_items(item_ids) -> pd.DataFrame:
    """A catalogue with a category (item index mod 3) and a price for each item."""
    ids = [str(i) for i in item_ids]
    return pd.DataFrame(
        {
            "item_id": ids,
            "category": [f"c{k % 3}" for k in range(len(ids))],
            "price": [5.0 + 3.0 * k for k in range(len(ids))],
        }
    )


@pytest.fixture
def chain() -> Interactions:
    return make_interactions()


@pytest.fixture(autouse=True)
def _single_thread():
    """Keep tiny tests from competing for the shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
