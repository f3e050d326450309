"""Event-type weights and time decay, shared by training and serving."""

import numpy as np
import pytest
import torch

from recsys.data.schemas import EVENT_TYPES
from recsys.models.weighting import (
    DEFAULT_EVENT_WEIGHTS,
    EventWeighting,
    dense_history,
    normalise_rows,
)

from .conftest import make_interactions

DAY = 86_400.0


def test_defaults_cover_every_event_type_and_rank_intent():
    w = EventWeighting().event_weights
    assert set(w) == set(EVENT_TYPES)
    assert w["purchase"] > w["add_to_cart"] > w["view"] > 0
    assert w["remove_from_cart"] == 0 and w["open"] == 0
    assert DEFAULT_EVENT_WEIGHTS["purchase"] == w["purchase"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"event_weights": {"buy": 1.0}}, "unknown event type 'buy'"),
        ({"event_weights": {"view": -1.0}}, "event_weights\\['view'\\]"),
        ({"position_tau": 0}, "position_tau"),
        ({"half_life_days": -2}, "half_life_days"),
        ({"max_items": 0}, "max_items"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EventWeighting(**kwargs)


def test_unknown_event_type_in_data_is_named():
    with pytest.raises(ValueError, match="'like' is not a canonical event type"):
        EventWeighting().history([1, 2], [0.0, 1.0], ["view", "like"])


def test_position_decay_counts_distinct_timestamps_from_the_end():
    weighting = EventWeighting(position_tau=2.0)
    items, weights = weighting.history([5, 6, 7, 8], [10.0, 20.0, 20.0, 30.0])
    got = dict(zip(items.tolist(), weights.tolist(), strict=True))
    assert got[8] == pytest.approx(1.0)
    assert got[6] == pytest.approx(np.exp(-0.5)) and got[7] == pytest.approx(np.exp(-0.5))
    assert got[5] == pytest.approx(np.exp(-1.0))


def test_half_life_halves_weight_per_half_life_relative_to_now():
    weighting = EventWeighting(half_life_days=7.0)
    now = 100 * DAY
    items, weights = weighting.history([1, 2], [now - 7 * DAY, now], now=now)
    got = dict(zip(items.tolist(), weights.tolist(), strict=True))
    assert got[1] == pytest.approx(0.5) and got[2] == pytest.approx(1.0)


def test_repeated_item_keeps_strongest_type_and_latest_time():
    weighting = EventWeighting(position_tau=1.0)
    items, weights = weighting.history([3, 4, 3], [1.0, 2.0, 3.0], ["purchase", "view", "view"])
    got = dict(zip(items.tolist(), weights.tolist(), strict=True))
    assert got[3] == pytest.approx(1.0)  # purchase strength, most recent position
    assert got[4] == pytest.approx(DEFAULT_EVENT_WEIGHTS["view"] * np.exp(-1.0))


def test_zero_weight_events_are_dropped_and_max_items_keeps_latest():
    items, weights = EventWeighting(max_items=2).history(
        [1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], ["view", "view", "open", "view"]
    )
    assert sorted(items.tolist()) == [2, 4]
    assert np.all(weights > 0)


def test_matrix_rows_equal_the_serving_time_history():
    train = make_interactions(event_types=("view", "add_to_cart", "purchase"))
    weighting = EventWeighting(position_tau=3.0, half_life_days=0.5)
    matrix = weighting.matrix(train)
    for user in (0, 7, 21):
        mine = train.users == user
        items, weights = weighting.history(
            train.items[mine], train.timestamps[mine], train.event_types[mine]
        )
        row = matrix.dense([user])[0]
        expected = dense_history(items, weights, train.n_items)[0]
        assert torch.allclose(row, expected)


def test_empty_history_and_normalisation_have_no_nans():
    items, weights = EventWeighting(position_tau=2.0).history([])
    assert len(items) == 0 and len(weights) == 0
    rows = normalise_rows(torch.tensor([[0.0, 0.0], [1.0, 3.0]]))
    assert torch.isfinite(rows).all()
    assert rows[1].sum() == pytest.approx(1.0)


def test_to_dict_round_trip():
    weighting = EventWeighting({"view": 0.1}, position_tau=4.0, half_life_days=3.0, max_items=9)
    assert EventWeighting(**weighting.to_dict()) == weighting
