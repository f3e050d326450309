"""The complement model: learned item and category complements, substitutes, repeat rates, and
their validation search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.interactions import Interactions
from recsys.errors import InvalidInputError
from recsys.eval import interaction_pairs
from recsys.models.complement_scorer import ComplementScorer
from recsys.models.complement_search import (
    COMPLEMENT_GRID,
    INTENT_GRID,
    POPULARITY_ONLY,
    carve,
    units,
)
from recsys.models.complements import DEFAULT_COMPLEMENT_PARAMS, ComplementModel, item_categories
from recsys.models.hybrid import HybridModel
from recsys.models.tuning import validation_split
from recsys.models.weighting import EventWeighting
from tests.utils.factories import make_shop

DAY = 86_400.0


def basket_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cameras c0..c3 bought with memory cards m0..m3; cameras also with other cameras (one
    shopper buys two), coffee bought again and again; each camera's own card is c_k -> m_k."""
    rows, t = [], 1_700_000_000.0

    def buy(user, session, items, when):
        for item in items:
            rows.append((user, item, when, "purchase", session))

    for u in range(40):
        k = u % 4
        buy(f"u{u}", f"u{u}-a", [f"c{k}", f"m{k}"] + ([f"c{(k + 1) % 4}"] if u < 8 else []), t)
        buy(f"u{u}", f"u{u}-b", ["coffee0"], t + 20 * DAY)
        buy(f"u{u}", f"u{u}-c", ["coffee0" if u % 2 else "coffee1"], t + 40 * DAY)
        t += 3600
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type",
                                         "session_id"])  # fmt: skip
    ids = sorted(events["item_id"].unique()) + ["c9"]  # c9: a camera nobody bought yet

    def category(item: str) -> str:
        return "coffee" if item.startswith("coffee") else {"c": "cameras", "m": "cards"}[item[0]]

    items = pd.DataFrame({"item_id": ids, "category": [category(i) for i in ids]})
    return events, items


@pytest.fixture(scope="module")
def fitted():
    events, items = basket_events()
    train = Interactions.from_frame(events, item_ids=np.asarray(items["item_id"]))
    codes, names = item_categories(items, train.item_ids)
    model = ComplementModel().fit(train, codes, names)
    return train, ComplementScorer(model.arrays, model.config())


def top(scorer: ComplementScorer, train: Interactions, scores: np.ndarray, k: int = 3):
    order = np.argsort(-scores, kind="stable")[:k]
    return [str(train.item_ids[i]) for i in order]


def test_the_complement_beats_the_co_bought_substitute(fitted):
    train, scorer = fitted
    c0 = list(train.item_ids).index("c0")
    # c1 is bought with c0 in a few baskets, but cameras are rarely bought again: demoted
    assert top(scorer, train, scorer.scores([c0]), 1) == ["m0"]
    assert scorer.durability[scorer.category_code("cameras")] == pytest.approx(1.0)


def test_repeat_rates_are_learned_per_category(fitted):
    _, scorer = fitted
    coffee, cameras = scorer.category_code("coffee"), scorer.category_code("cameras")
    assert scorer.repeat[coffee] > 0.9 and scorer.repeat[cameras] == 0.0
    assert scorer.keep_same[coffee] > scorer.keep_same[cameras]


def test_an_unbought_item_inherits_its_categorys_complements(fitted):
    train, scorer = fitted
    c9 = list(train.item_ids).index("c9")
    by_item = top(scorer, train, scorer.scores([c9]), 4)
    by_category = top(scorer, train, scorer.scores([], [scorer.category_code("cameras")]), 4)
    assert set(by_item) == {"m0", "m1", "m2", "m3"} == set(by_category)


def test_intent_after_a_durable_purchase_moves_to_complements(fitted):
    train, scorer = fitted
    c0, c1 = (list(train.item_ids).index(i) for i in ("c0", "c1"))
    m0 = list(train.item_ids).index("m0")
    intent = scorer.intent([c0], ["purchase"], [0.0])
    assert intent is not None and intent.category_weight < 0
    adjusted = scorer.adjust([c1, m0], np.array([1.0, 0.0], np.float32), intent, 0.5)
    assert adjusted[1] > adjusted[0]
    views = scorer.intent([c0, c1], ["view", "view"], [0.0, 10.0])
    assert views.category == scorer.category_code("cameras") and views.category_weight > 0


def test_bad_input_is_refused(fitted):
    _, scorer = fitted
    with pytest.raises(InvalidInputError, match="basket item"):
        scorer.scores([], [])
    with pytest.raises(InvalidInputError, match="must be in"):
        scorer.scores([10_000])
    with pytest.raises(InvalidInputError, match="unknown complement params"):
        ComplementModel({"bogus": 1.0})


def test_planted_complements_are_found_on_a_generated_shop(tmp_path):
    shop = make_shop(tmp_path / "shop", users=600, items=120, seed=5)
    events, items = (
        pd.read_parquet(shop / "events.parquet"),
        pd.read_parquet(shop / "items.parquet"),
    )
    truth = pd.read_parquet(shop / "truth" / "complements.parquet")
    train = Interactions.from_frame(events, item_ids=np.sort(items["item_id"].to_numpy()))
    codes, names = item_categories(items, train.item_ids)
    model = ComplementModel().fit(train, codes, names)
    scorer = ComplementScorer(model.arrays, model.config())
    position = {item: i for i, item in enumerate(train.item_ids)}
    hits = [position[c] in np.argsort(-scorer.scores([position[a]]), kind="stable")[:10]
            for a, c in zip(truth["item_id"], truth["complement_id"], strict=True)]  # fmt: skip
    assert np.mean(hits) >= 0.45


def test_raw_events_show_the_re_buying_that_pairs_hide():
    events, items = basket_events()
    pairs = Interactions.from_frame(
        interaction_pairs(events), item_ids=np.asarray(items["item_id"])
    )
    codes, names = item_categories(items, pairs.item_ids)
    coffee = list(names).index("coffee")
    # half the customers re-buy the same coffee: one row per (user, item) hides it
    from_pairs = ComplementModel().fit(pairs, codes, names).arrays["comp_repeat"][coffee]
    raw = ComplementModel().fit(pairs, codes, names, events=events).arrays["comp_repeat"][coffee]
    assert raw > 0.9 and from_pairs < 0.75
    with pytest.raises(InvalidInputError, match="missing columns"):
        ComplementModel().fit(pairs, codes, names, events=events.drop(columns="timestamp"))


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory):
    shop = make_shop(tmp_path_factory.mktemp("shop") / "shop", users=400, items=100, seed=11)
    return pd.read_parquet(shop / "events.parquet"), pd.read_parquet(shop / "items.parquet")


def test_validation_units_come_only_from_the_held_out_period(small_shop):
    events, items = small_shop
    train = Interactions.from_frame(events)
    split = validation_split(train, 300, seed=0)
    inner, later = carve(train, split)
    first_held = np.full(train.n_users, np.inf)
    np.minimum.at(first_held, split.held_out.users, split.held_out.timestamps)
    assert (inner.timestamps < first_held[inner.users]).all()
    assert (later.timestamps >= first_held[later.users]).all()
    assert len(inner) + len(later) == len(train)
    queries, targets = units(inner, later, EventWeighting(), seed=0)
    assert len(targets) > 20 and len(queries) == len(targets)
    later_items = set(later.items.tolist())
    assert set(targets.tolist()) <= later_items
    assert all(t not in q for q, t in zip(queries, targets, strict=True))


def test_the_default_model_chooses_complement_and_intent_params_on_validation(small_shop):
    events, items = small_shop
    pairs = Interactions.from_frame(interaction_pairs(events))
    model = HybridModel(dim=16, epochs=2, validation_users=300, device="cpu")
    model.fit(pairs, items=items, events=events)
    report = model.report["search"]["complements"]
    assert report["units"] > 20 and report["intent"]["users"] > 10
    chosen = model.report["complements"]
    for name, grid in (COMPLEMENT_GRID | INTENT_GRID).items():
        fallback = {name: chosen[name]} == POPULARITY_ONLY  # popularity was not clearly beaten
        assert chosen[name] in grid or chosen[name] == DEFAULT_COMPLEMENT_PARAMS[name] or fallback
    assert model.scorer.config["complements"] == chosen  # served with what was chosen
    served = ComplementScorer(model.complements, model.scorer.config["complements"])
    assert served.config["complement_shift"] == chosen["complement_shift"]


def test_batch_scores_are_the_per_basket_scores(small_shop):
    events, items = small_shop
    train = Interactions.from_frame(events)
    codes, names = item_categories(items, train.item_ids)
    model = ComplementModel({"shrinkage": 3.0, "substitute_floor": 0.2}).fit(train, codes, names)
    scorer = ComplementScorer(model.arrays, model.config())
    rng = np.random.default_rng(0)
    baskets = [rng.choice(train.n_items, size, replace=False) for size in (1, 2, 3, 5, 1, 4)]
    batch = scorer.batch_scores(baskets)
    for row, basket in enumerate(baskets):
        np.testing.assert_allclose(batch[row], scorer.scores(basket), rtol=1e-5, atol=1e-9)
    with pytest.raises(InvalidInputError, match="basket item"):
        scorer.batch_scores([[0], []])


def test_the_popularity_prior_weight_moves_popular_items_up(fitted):
    train, scorer = fitted
    c0 = list(train.item_ids).index("c0")
    heavy = ComplementScorer(_arrays(), scorer.config | {"popularity": 100.0})
    most_bought = str(train.item_ids[int(np.argmax(scorer.mass))])
    assert top(heavy, train, heavy.scores([c0]), 1) == [most_bought] != ["m0"]
    assert top(scorer, train, scorer.scores([c0]), 1) == ["m0"]


def _arrays() -> dict:
    events, items = basket_events()
    train = Interactions.from_frame(events, item_ids=np.asarray(items["item_id"]))
    return ComplementModel().fit(train, *item_categories(items, train.item_ids)).arrays
