"""Encoded interactions: id order, vocabularies, the sparse matrix and its dense row blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys.data import EVENTS
from recsys.data.interactions import Interactions, natural_order, sorted_vocabulary
from recsys.data.validate import validate_frame


def frame(rows) -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])
    return validate_frame(raw, EVENTS)


def test_natural_order_is_numeric_for_integer_ids_and_text_otherwise():
    assert sorted_vocabulary(["10", "9", "100", "9"]).tolist() == ["9", "10", "100"]
    assert sorted_vocabulary(["b", "10", "9"]).tolist() == ["10", "9", "b"]
    assert natural_order(["-1", "2"]).tolist() == [-1, 2]


def test_from_frame_encodes_ids_and_times():
    events = frame([("u2", "10", 5, "view"), ("u1", "9", 7, "purchase"), ("u2", "9", 6, "view")])
    data = Interactions.from_frame(events)
    assert data.user_ids.tolist() == ["u1", "u2"] and data.item_ids.tolist() == ["9", "10"]
    assert data.users.tolist() == [1, 0, 1] and data.items.tolist() == [1, 0, 0]
    assert data.timestamps.tolist() == [5.0, 7.0, 6.0]
    assert data.event_types.tolist() == ["view", "purchase", "view"]
    assert len(data) == 3 and data.n_users == 2 and data.n_items == 2


def test_rows_outside_a_given_vocabulary_are_dropped():
    events = frame([("u1", "a", 1, "view"), ("u1", "zzz", 2, "view"), ("u9", "a", 3, "view")])
    data = Interactions.from_frame(events, user_ids=np.array(["u1"]), item_ids=np.array(["a"]))
    assert len(data) == 1 and data.timestamps.tolist() == [1.0]
    assert data.sessions.tolist() == [""]


def test_matrix_keeps_one_entry_per_pair_with_the_largest_weight():
    events = frame([("u", "a", 1, "view"), ("u", "a", 2, "view"), ("u", "b", 3, "view"),
                    ("v", "b", 4, "view")])  # fmt: skip
    data = Interactions.from_frame(events)
    weights = np.array([1.0, 3.0, 2.0, 1.0], dtype=np.float32)
    matrix = data.matrix(weights)
    assert matrix.shape == (2, 2)
    assert matrix.indptr.tolist() == [0, 2, 3]
    assert matrix.indices.tolist() == [0, 1, 1] and matrix.data.tolist() == [3.0, 2.0, 1.0]
    dense = matrix.dense([1, 0])
    assert torch.equal(dense, torch.tensor([[0.0, 1.0], [3.0, 2.0]]))
    blocks = list(matrix.blocks(block=1))
    assert len(blocks) == 2 and torch.equal(torch.cat(blocks), matrix.dense([0, 1]))
    assert data.item_counts().tolist() == [1, 2]  # distinct users per item


def test_sequences_are_in_time_order_per_user():
    events = frame([("u", "b", 2, "view"), ("u", "a", 1, "view"), ("v", "c", 5, "view")])
    indptr, items = Interactions.from_frame(events).sequences()
    assert indptr.tolist() == [0, 2, 3] and items.tolist() == [0, 1, 2]
