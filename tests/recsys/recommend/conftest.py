"""A small real shop, the default model fitted on it, and engines over its bundle."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.bundle import load_bundle
from recsys.recommend import Filters, RecommendationEngine
from tests.utils.factories import make_bundle, make_shop

NO_FILTERS = Filters(exclude_purchased=False, in_stock=False)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """The default model fitted (fast, untuned) on a 300-user, 150-item shop."""
    root = tmp_path_factory.mktemp("recommend")
    return load_bundle(make_bundle(make_shop(root / "shop"), root / "bundle"))


@pytest.fixture
def make_engine(bundle):
    """Fresh engines (their suppression memory and erasures are per engine)."""

    def make(**kwargs) -> RecommendationEngine:
        return RecommendationEngine(
            bundle, model_version="v-test", **({"device": "cpu", "index_kind": "flat"} | kwargs)
        )

    return make


@pytest.fixture
def engine(make_engine):
    return make_engine()


def purchases(engine: RecommendationEngine, user_id: str) -> set[str]:
    """Item ids the model's stored history says ``user_id`` purchased."""
    state = engine.scorer.user_state(engine.user_index(user_id))
    types = np.asarray(state.event_types, dtype=object)
    return set(engine.item_ids[np.asarray(state.items)[types == "purchase"]])


def seen(engine: RecommendationEngine, user_id: str) -> set[str]:
    """Item ids in ``user_id``'s stored history."""
    return set(engine.item_ids[engine.scorer.user_state(engine.user_index(user_id)).items])


def buyer(engine: RecommendationEngine) -> str:
    """A known user with at least two purchases and a long history."""
    lengths = engine.scorer.history.row_lengths()
    for index in np.argsort(-lengths, kind="stable"):
        user = str(engine.user_ids[index])
        if len(purchases(engine, user)) >= 2:
            return user
    raise AssertionError("the test shop has no user with two purchases")
