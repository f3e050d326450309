"""The generated shop loads through the canonical loaders, repeats per seed, and really carries
the planted structure: segments, funnels, abandonment, repeat purchases, complements, skew."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from recsys.data.frame import pd
from recsys.eval import evaluate_model, temporal_split
from recsys.models import EASEModel, PopularityModel
from recsys.synth import generate_shop
from recsys.synth.catalogue import MAX_CATEGORIES, MIN_CATEGORIES

FILES = (
    "events.parquet",
    "items.parquet",
    "users.parquet",
    "truth/user_segments.parquet",
    "truth/complements.parquet",
    "truth/summary.json",
)


def test_outputs_load_and_agree_with_each_other(shop):
    counts = shop.summary["counts"]
    assert len(shop.events) == counts["events"]
    assert len(shop.items) == counts["items"] == shop.config.items
    assert len(shop.users) == counts["users"] == shop.config.users
    assert set(shop.events["item_id"]) <= set(shop.items["item_id"])
    assert set(shop.events["user_id"]) <= set(shop.users["user_id"])
    assert set(shop.events["event_type"]) == {"view", "add_to_cart", "remove_from_cart", "purchase"}
    assert str(shop.events["timestamp"].dt.tz) == "UTC"
    start = pd.Timestamp("2026-01-01", tz="UTC")
    assert shop.events["timestamp"].min() >= start
    assert shop.events["timestamp"].max() <= start + pd.Timedelta(days=90)
    assert sorted(shop.segments["user_id"]) == sorted(shop.users["user_id"])
    assert shop.segments["segment"].between(0, 7).all()
    consents = shop.users["consents"].map(json.loads)
    assert all(set(c) == {"email", "push", "sms"} for c in consents)
    saved = json.loads((shop.path / "truth" / "summary.json").read_text())
    assert saved["seed"] == shop.config.seed and saved["counts"] == counts
    mean = len(shop.events) / shop.config.users
    assert 17 <= mean <= 23, f"{mean:.1f} events per user for a target of 20"


def test_catalogue_prices_stock_and_brands(shop):
    items = shop.items
    assert MIN_CATEGORIES <= items["category"].nunique() <= MAX_CATEGORIES
    assert (items["price"] > 0).all()
    assert 0.88 <= items["in_stock"].mean() <= 0.99
    spread = np.log(items["price"]).groupby(items["category"]).std().median()
    assert 0.2 < spread < 0.8, "lognormal prices around each category's median"
    medians = items.groupby("category")["price"].median()
    assert medians.max() / medians.min() > 20, "categories differ in price level"
    brands = items["attributes"].map(lambda text: json.loads(text)["brand"])
    assert brands.str.len().gt(0).all() and brands.nunique() >= 20


def test_same_seed_gives_identical_files_and_another_seed_differs(shop, tmp_path):
    again = tmp_path / "again"
    generate_shop(shop.config, again)
    for name in FILES:
        assert (again / name).read_bytes() == (shop.path / name).read_bytes(), name
    other = tmp_path / "other"
    generate_shop(replace(shop.config, seed=shop.config.seed + 1), other)
    events = pd.read_parquet(other / "events.parquet")
    assert not events.equals(pd.read_parquet(shop.path / "events.parquet"))


def _category_shares(shop) -> tuple[np.ndarray, np.ndarray]:
    frame = shop.events.merge(shop.items[["item_id", "category"]], on="item_id")
    table = pd.crosstab(frame["user_id"], frame["category"])
    counts = table.to_numpy(dtype=float)
    shares = counts / counts.sum(axis=1, keepdims=True)
    segment = shop.segments.set_index("user_id")["segment"].loc[table.index].to_numpy()
    return shares, segment


def test_users_of_a_segment_share_category_tastes(shop):
    shares, segment = _category_shares(shop)
    unit = shares / np.linalg.norm(shares, axis=1, keepdims=True)
    similarity = unit @ unit.T
    same = segment[:, None] == segment[None, :]
    np.fill_diagonal(same, False)
    different = segment[:, None] != segment[None, :]
    within, between = similarity[same].mean(), similarity[different].mean()
    assert within > 1.5 * between, (within, between)
    # Nearest segment centroid (centroids from the other users) recovers the planted segment.
    hits = 0
    for u in range(len(shares)):
        others = np.arange(len(shares)) != u
        centroids = np.stack(
            [
                shares[others & (segment == k)].mean(axis=0)
                if (others & (segment == k)).any()
                else np.full(shares.shape[1], np.inf)
                for k in range(8)
            ]
        )
        hits += int(np.argmin(((centroids - shares[u]) ** 2).sum(axis=1)) == segment[u])
    chance = np.bincount(segment).max() / len(segment)
    assert hits / len(shares) > max(0.5, 2 * chance), hits / len(shares)


def test_complement_pairs_are_bought_together_far_above_chance(shop):
    purchases = shop.events[shop.events["event_type"] == "purchase"]
    baskets = purchases[["session_id", "item_id"]].drop_duplicates()
    n_baskets = baskets["session_id"].nunique()
    frequency = baskets["item_id"].value_counts()
    pairs = shop.complements[["item_id", "complement_id"]]
    together = baskets.merge(pairs, on="item_id").merge(
        baskets.rename(columns={"item_id": "complement_id"}), on=["session_id", "complement_id"]
    )
    expected = (
        frequency.reindex(pairs["item_id"]).fillna(0).to_numpy()
        * frequency.reindex(pairs["complement_id"]).fillna(0).to_numpy()
    ).sum() / n_baskets
    assert len(together) > 5 * expected, (len(together), expected)
    anchors = baskets.merge(pairs, on="item_id")
    assert len(together) / len(anchors) > 0.3, "P(complement | anchor bought) is high"
    cross = shop.items.set_index("item_id")["category"]
    assert (cross.loc[pairs["item_id"]].to_numpy() != cross.loc[pairs["complement_id"]]).all()


def test_funnel_order_abandonment_and_removals(shop):
    events = shop.events
    n = events["event_type"].value_counts()
    assert n["view"] > 3 * n["add_to_cart"] > 3 * n["purchase"] / 2 > 0
    assert n["remove_from_cart"] > 0
    carts = events[events["event_type"] == "add_to_cart"]
    first_cart = carts.groupby(["session_id", "item_id"])["timestamp"].min().rename("cart_time")
    bought = events[events["event_type"] == "purchase"].join(
        first_cart, on=["session_id", "item_id"]
    )
    preceded = (bought["cart_time"] < bought["timestamp"]).mean()
    assert preceded >= 0.95, f"only {preceded:.0%} of purchases follow an add_to_cart"
    removed = events[events["event_type"] == "remove_from_cart"].join(
        first_cart, on=["session_id", "item_id"]
    )
    assert (removed["cart_time"] < removed["timestamp"]).all()
    cart_keys = set(zip(carts["session_id"], carts["item_id"], strict=True))
    bought_keys = set(zip(bought["session_id"], bought["item_id"], strict=True))
    abandoned_sessions = {s for s, i in cart_keys - bought_keys}
    cart_sessions = {s for s, _ in cart_keys}
    assert len(abandoned_sessions) > 0.2 * len(cart_sessions)
    assert (events["quantity"] >= 1).all()
    price = shop.items.set_index("item_id")["price"].loc[bought["item_id"]].to_numpy()
    assert np.allclose(bought["value"], np.round(price * bought["quantity"], 2))


def test_timestamps_increase_in_sessions_and_sessions_do_not_overlap(shop):
    events = shop.events
    gap = events.groupby("session_id")["timestamp"].diff().dropna()
    assert (gap > pd.Timedelta(0)).all()
    assert gap.median() < pd.Timedelta(minutes=5)
    assert events["session_id"].str.split("-").str[0].eq(events["user_id"]).all()
    spans = events.groupby(["user_id", "session_id"])["timestamp"].agg(["min", "max"])
    spans = spans.sort_values(["user_id", "min"])
    next_start = spans.groupby("user_id")["min"].shift(-1)
    assert (next_start.dropna() > spans["max"][next_start.notna()]).all()
    starts = spans["min"]
    days = (starts - starts.min()).dt.days
    assert days.max() > 80 and days.nunique() > 60, "sessions spread over the time span"


def test_consumables_are_bought_again_in_later_sessions(shop):
    purchases = shop.events[shop.events["event_type"] == "purchase"]
    per_pair = purchases.groupby(["user_id", "item_id"])["session_id"].nunique()
    repeats = per_pair[per_pair > 1].reset_index()
    assert len(repeats) >= 0.05 * len(per_pair)
    assert len(repeats) == shop.summary["counts"]["repeat_purchase_pairs"]
    consumable = shop.items.set_index("item_id")["attributes"].map(
        lambda text: json.loads(text)["consumable"]
    )
    assert consumable.loc[repeats["item_id"]].mean() > 0.9


def test_popularity_is_skewed(shop):
    views = shop.events.loc[shop.events["event_type"] == "view", "item_id"].value_counts()
    views = views.reindex(shop.items["item_id"], fill_value=0).sort_values(ascending=False)
    top_share = views.iloc[: len(views) // 10].sum() / views.sum()
    assert top_share > 0.35, f"top 10% of items get {top_share:.0%} of views"


@pytest.mark.parametrize("model", [EASEModel])
def test_personal_models_beat_popularity_on_the_shop(shop, model):
    split = temporal_split(shop.events)
    pop = evaluate_model(PopularityModel(device="cpu"), split, ks=[20])
    personal = evaluate_model(model(device="cpu"), split, ks=[20])
    assert personal["ndcg@20"] > 1.3 * pop["ndcg@20"], (personal, pop)
