"""The contract every registered model keeps (in the spirit of implicit's shared recommender tests).

One table names every model in ``recsys.models.MODELS`` with small, fast settings; each check runs
on the CPU always and on CUDA when present. A model added to the registry without a row here fails
``test_every_registered_model_is_in_the_table``.
"""

from __future__ import annotations

import pytest
import torch

from recsys.bundle import bundle_of, load_bundle, save_bundle
from recsys.data.interactions import Interactions
from recsys.errors import ConflictError, InvalidInputError
from recsys.models import MODELS, NotFittedError

from .conftest import make_events, make_interactions, make_items

FAST_TRAINED = {"dim": 8, "epochs": 2, "seed": 0}
SETTINGS = {
    "pop": {},
    "itemknn": {"neighbours": 10},
    "ease": {"l2": 10.0},
    "covisit": {"neighbours": 10},
    "twotower": FAST_TRAINED,
    "retrieval": FAST_TRAINED | {"tune": False},
    "default": FAST_TRAINED | {"tune": False},
}
"""Constructor arguments per registered model: tiny and quick, seeded where the model trains."""

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="CUDA is not available on this machine"
        ),
    ),
]
NAMES = sorted(SETTINGS)
USERS = torch.arange(6)


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, object]:
    train = make_interactions(
        n_users=30, n_items=20, length=8, event_types=("view", "add_to_cart", "purchase"),
        session_length=4,
    )  # fmt: skip
    return train, make_items(train.item_ids)


def build(name: str, device: str):
    return MODELS[name](device=device, **SETTINGS[name])


@pytest.fixture(scope="module")
def fitted(data):
    """One fitted model per (name, device), fitted on first use."""
    cache = {}

    def get(name: str, device: str):
        if (name, device) not in cache:
            train, items = data
            cache[name, device] = build(name, device).fit(train, items=items)
        return cache[name, device]

    return get


def test_every_registered_model_is_in_the_table():
    assert set(SETTINGS) == set(MODELS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_the_model_and_scores_users_by_items(name, device, data, fitted):
    train, _ = data
    model = fitted(name, device)
    assert model.n_items == train.n_items
    scores = model.score(USERS)
    assert scores.shape == (len(USERS), train.n_items)
    assert scores.dtype == torch.float32 and scores.device.type == device
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_scores_of_a_user_do_not_depend_on_the_batch(name, device, fitted):
    model = fitted(name, device)
    batch = model.score(USERS)
    alone = model.score(USERS[3:4])
    assert torch.allclose(alone[0], batch[3], atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_histories_of_unknown_users_score_the_whole_catalogue(name, device, data, fitted):
    train, _ = data
    model = fitted(name, device)
    histories = torch.zeros(2, train.n_items)
    histories[0, [1, 2, 3]] = 1.0
    histories[1, 7] = 1.0
    scores = model.score_histories(histories)
    assert scores.shape == (2, train.n_items) and torch.isfinite(scores).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_scoring_before_fit_is_a_not_fitted_conflict(name, device):
    model = build(name, device)
    with pytest.raises(NotFittedError, match="not fitted") as caught:
        model.score(USERS)
    assert isinstance(caught.value, ConflictError)


@pytest.mark.parametrize("name", NAMES)
def test_fitting_on_no_interactions_is_refused(name, data):
    train, items = data
    none = make_events(n_users=2, n_items=2, length=1).iloc[:0]
    empty = Interactions.from_frame(none, user_ids=train.user_ids, item_ids=train.item_ids)
    assert len(empty) == 0 and empty.n_items == train.n_items
    with pytest.raises(InvalidInputError, match="zero interactions"):
        build(name, "cpu").fit(empty, items=items)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_two_fits_with_the_same_seed_score_the_same(name, device, data, fitted):
    train, items = data
    again = build(name, device).fit(train, items=items)
    # CUDA's atomic adds may reorder float sums: equal up to rounding there, exactly on the CPU
    atol = 0.0 if device == "cpu" else 1e-4
    assert torch.allclose(again.score(USERS), fitted(name, device).score(USERS), atol=atol, rtol=0)


@pytest.mark.parametrize("name", ["pop", "itemknn", "ease", "covisit"])
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_closed_form_models_agree_on_cpu_and_cuda(name, fitted):
    cpu = fitted(name, "cpu").score(USERS)
    cuda = fitted(name, "cuda").score(USERS).cpu()
    assert torch.allclose(cpu, cuda, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_round_trip(name, device, data, fitted, tmp_path):
    model = fitted(name, device)
    if not hasattr(type(model), "from_arrays"):
        pytest.skip(f"{name} has no loader (from_arrays): only the default model family is served")
    _, items = data
    saved = save_bundle(bundle_of(model, items), tmp_path / "bundle")
    bundle = load_bundle(saved)
    assert bundle.kind == name
    arrays = bundle.arrays | {"item_ids": bundle.item_ids, "user_ids": bundle.user_ids}
    loaded = type(model).from_arrays(arrays, bundle.config, device=device)
    assert loaded.device.type == device
    assert torch.allclose(loaded.score(USERS), model.score(USERS), atol=1e-6)
    assert loaded.cross_sell([1, 2], 5)[0].tolist() == model.cross_sell([1, 2], 5)[0].tolist()
