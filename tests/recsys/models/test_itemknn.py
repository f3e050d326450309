"""ItemKNN: cosine similarity, top-k pruning, shrinkage and scoring as history @ similarity."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.interactions import Interactions
from recsys.errors import InvalidInputError
from recsys.models import ItemKNNModel

from .conftest import START, make_interactions

# users x items: a 0/1 matrix small enough to compute the cosine similarity by hand
MATRIX = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ]
)


def interactions_of(matrix: np.ndarray) -> Interactions:
    users, items = np.nonzero(matrix)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "timestamp": START + np.arange(len(users)),
        }
    )
    return Interactions.from_frame(frame)


def cosine(matrix: np.ndarray) -> np.ndarray:
    gram = matrix.T @ matrix
    norms = np.sqrt(np.diag(gram))
    sim = gram / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    return sim


def test_similarity_is_the_cosine_with_a_zero_diagonal():
    model = ItemKNNModel(neighbours=10, device="cpu").fit(interactions_of(MATRIX))
    assert np.allclose(model.similarity.numpy(), cosine(MATRIX), atol=1e-6)


def test_each_item_keeps_its_top_neighbours_only():
    model = ItemKNNModel(neighbours=1, device="cpu").fit(interactions_of(MATRIX))
    full = cosine(MATRIX)
    sim = model.similarity.numpy()
    assert ((sim != 0).sum(axis=1) == 1).all()
    rows = np.arange(len(full))
    assert np.allclose(sim[rows, full.argmax(axis=1)], full.max(axis=1))


def test_shrink_lowers_every_similarity():
    plain = ItemKNNModel(device="cpu").fit(interactions_of(MATRIX)).similarity
    shrunk = ItemKNNModel(shrink=5.0, device="cpu").fit(interactions_of(MATRIX)).similarity
    positive = plain > 0
    assert (shrunk[positive] < plain[positive]).all()
    assert torch.equal(shrunk > 0, positive)


def test_scores_are_the_history_times_the_similarity():
    train = interactions_of(MATRIX)
    model = ItemKNNModel(device="cpu").fit(train)
    expected = MATRIX.astype(np.float32) @ cosine(MATRIX)
    assert np.allclose(model.score(torch.arange(4)).numpy(), expected, atol=1e-5)


def test_neighbours_follow_the_planted_chain():
    # every user walks items s, s+1, s+2, ...: an item's nearest neighbour is next to it
    train = make_interactions()
    model = ItemKNNModel(neighbours=5, device="cpu").fit(train)
    best = model.similarity.argmax(dim=1).numpy()
    items = np.arange(train.n_items)
    distance = np.abs((best - items + train.n_items // 2) % train.n_items - train.n_items // 2)
    assert np.isin(distance, [1, 2]).all()


def test_a_single_item_catalogue_has_no_neighbours():
    model = ItemKNNModel(device="cpu").fit(interactions_of(np.ones((3, 1))))
    assert model.similarity.shape == (1, 1) and float(model.similarity[0, 0]) == 0.0
    assert model.score(torch.arange(3)).abs().sum() == 0


@pytest.mark.parametrize("neighbours", [0, -3])
def test_neighbours_must_be_positive(neighbours):
    with pytest.raises(InvalidInputError, match="neighbours must be positive"):
        ItemKNNModel(neighbours=neighbours)
