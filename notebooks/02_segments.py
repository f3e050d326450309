# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Customer segments
#
# The segments of a small synthetic shop, computed by the same library the service runs: the
# events go into a store (which keeps each customer's profile aggregates as it commits them), a
# few rule segments are defined, and the batch job (`recsys segments refresh`) scores RFM,
# clusters the user embeddings of a freshly trained model and re-evaluates every segment. Then:
#
# 1. the size of every segment (rule segments and the built-in RFM groups);
# 2. an RFM heat map: recency score x frequency score, customers and average spend per cell;
# 3. the embedding clusters in two dimensions (PCA), one colour per cluster;
# 4. an affinity audience: the customers most likely to buy from a category, with their scores.

# %% tags=["parameters"]
USERS, ITEMS, SEED = 800, 150, 5
K = None  # clusters; None: chosen by silhouette, as the batch job does
AUDIENCE = 15  # customers in the affinity audience

# %%
import tempfile
from datetime import timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sqlalchemy import select

from recsys.bundle import bundle_of, load_bundle, save_bundle
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.eval import interaction_pairs
from recsys.models.hybrid import HybridModel
from recsys.segments.audiences import AudienceFinder
from recsys.segments.clusters import STATE_NAME, taste_vectors
from recsys.segments.engine import SegmentEngine
from recsys.segments.refresh import refresh
from recsys.segments.service import SegmentService
from recsys.store import Store, read_session
from recsys.store.profile_aggregates import CustomerAggregate
from recsys.store.tables import UserProfile
from recsys.synth import ShopConfig, generate_shop

WORK = Path(tempfile.mkdtemp(prefix="segments-"))
generate_shop(ShopConfig(users=USERS, items=ITEMS, seed=SEED), WORK / "shop")
events = pd.read_parquet(WORK / "shop" / "events.parquet").sort_values("timestamp")
catalogue = pd.read_parquet(WORK / "shop" / "items.parquet")
NOW = events["timestamp"].max().to_pydatetime() + timedelta(hours=1)  # the segments' clock
print(f"{len(events)} events of {events['user_id'].nunique()} customers, until {NOW:%Y-%m-%d}")

# %% [markdown]
# ## The model whose user embeddings are clustered
#
# A small default model (the hybrid two-tower) trained on all events, saved and loaded as the
# service would load it.

# %%
model = HybridModel(dim=32, epochs=5, tune=False, device="cpu", seed=0)
model.fit(Interactions.from_frame(interaction_pairs(events)), items=catalogue,
          users=pd.read_parquet(WORK / "shop" / "users.parquet"))
bundle = load_bundle(save_bundle(bundle_of(model, catalogue, metrics={}), WORK / "bundle"))

# %% [markdown]
# ## Store, rule segments and the batch job

# %%
store = Store.open(f"sqlite:///{WORK / 'recsys.db'}")
store.items.upsert(catalogue[["item_id", "category"]].to_dict("records"))
rows = events.to_dict("records")
for start in range(0, len(rows), 5000):
    store.events.append(rows[start : start + 5000])  # folds the profile aggregates as it commits
service = SegmentService(store, SegmentEngine(store, clock=lambda: NOW))
TOP_CATEGORY = events.loc[events["event_type"] == "purchase", "item_id"].map(
    catalogue.set_index("item_id")["category"]).value_counts().index[0]
DAY = 86400
rules = {
    "active in the last 30 days": {"type": "performed", "event_type": "view",
                                   "window": {"seconds": 30 * DAY}},
    f"bought {TOP_CATEGORY} twice": {"type": "performed", "event_type": "purchase",
                                     "category": TOP_CATEGORY, "count": {"op": "gte", "value": 2}},
    "carted, no purchase for a week": {"type": "not_performed_since", "event_type": "purchase",
                                       "since": "add_to_cart", "seconds": 7 * DAY},
    "big spenders": {"type": "attribute", "path": "revenue", "op": "gte", "value": 100},
}
for name, definition in rules.items():
    service.create(name, definition, evaluate=False)  # the batch job below evaluates them
summary = refresh(store, engine=service.engine, bundle=bundle, k=K, device="cpu")
summary

# %% [markdown]
# ## 1. Segment sizes

# %%
segments = pd.DataFrame(store.segments.all())[["id", "name", "kind"]]
segments["size"] = [store.segments.size(s) for s in segments["id"]]
segments = segments.sort_values(["kind", "size"], ascending=[False, True])
fig, ax = plt.subplots(figsize=(7, 5))
colours = segments["kind"].map({"rule": "#37b", "rfm": "#5a8"}).fillna("#999")
ax.barh(segments["name"], segments["size"], color=colours)
ax.set_xlabel("customers")
ax.set_title(f"Segment sizes ({summary['customers']} customers; blue: rules, green: RFM groups)")
plt.tight_layout()
segments[["name", "kind", "size"]]

# %% [markdown]
# ## 2. RFM heat map
#
# Customers with a purchase are scored 1-5 by quintiles of recency (5 = most recent), frequency and
# monetary value. Left: how many customers fall in each recency x frequency cell; right: their
# average spend.

# %%
stmt = (
    select(CustomerAggregate.user_id, CustomerAggregate.rfm_r, CustomerAggregate.rfm_f,
           CustomerAggregate.rfm_m, UserProfile.revenue)
    .join(UserProfile, UserProfile.user_id == CustomerAggregate.user_id)
    .where(CustomerAggregate.rfm_r.is_not(None))
)  # fmt: skip
with read_session(store.engine) as session:
    rfm = pd.DataFrame(session.execute(stmt).all(), columns=["user_id", "r", "f", "m", "revenue"])
scores = range(1, 6)
counts = rfm.pivot_table(index="r", columns="f", values="user_id", aggfunc="count")
counts = counts.reindex(index=scores, columns=scores).fillna(0).astype(int)
spend = rfm.pivot_table(index="r", columns="f", values="revenue", aggfunc="mean")
spend = spend.reindex(index=scores, columns=scores)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, table, title, fmt in ((axes[0], counts, "customers", "{:.0f}"),
                              (axes[1], spend, "average spend", "{:.0f}")):
    image = ax.imshow(table.to_numpy(dtype=float), origin="lower", cmap="viridis")
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, fmt.format(value), ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(5), scores)
    ax.set_yticks(range(5), scores)
    ax.set_xlabel("frequency score")
    ax.set_ylabel("recency score")
    ax.set_title(f"RFM: {title}")
    fig.colorbar(image, ax=ax, shrink=0.8)
plt.tight_layout()
print(f"{len(rfm)} customers with an RFM score")

# %% [markdown]
# ## 3. Embedding clusters in two dimensions
#
# The batch job clustered the customers' taste vectors (the model's unit user vector plus the
# history's choices within categories and its sessions, in the same space; k-means in torch, `k`
# by silhouette unless given), then refined the clusters with a mixture model of each customer's
# sessions, items and categorical attributes. Here the vectors are projected on their first two
# principal components.

# %%
state = store.segments.get_state(STATE_NAME)
user_ids, vectors = taste_vectors(bundle)
with read_session(store.engine) as session:
    stmt = select(CustomerAggregate.user_id, CustomerAggregate.cluster)
    cluster_of = {user: cluster for user, cluster in session.execute(stmt)}
labels = np.array([cluster_of.get(u, -1) for u in user_ids])
centred = vectors - vectors.mean(axis=0)
_, singular, axes_ = np.linalg.svd(centred, full_matrices=False)
points = centred @ axes_[:2].T
explained = (singular[:2] ** 2).sum() / (singular**2).sum()
fig, ax = plt.subplots(figsize=(6.5, 5))
for cluster in sorted(set(labels)):
    mine = labels == cluster
    ax.scatter(points[mine, 0], points[mine, 1], s=8, alpha=0.7, label=f"cluster {cluster}")
ax.set_xlabel("PC 1")
ax.set_ylabel("PC 2")
ax.set_title(f"{state['k']} user clusters, PCA ({explained:.0%} of the variance)")
ax.legend(markerscale=2, fontsize=8)
plt.tight_layout()
pd.DataFrame([{"cluster": c["cluster_id"], "size": c["size"],
               "top categories": ", ".join(t["id"] for t in c["top_categories"][:3]),
               "average spend": round(c["average_spend"], 2)} for c in state["clusters"]])

# %% [markdown]
# ## 4. Affinity audience
#
# The customers most likely to buy from the shop's best-selling category: the model's score of
# every customer for the category (reverse search over the users' query vectors). Customers who
# already bought from it are marked.

# %%
finder = AudienceFinder(bundle, device="cpu")
audience = pd.DataFrame(finder.affinity(AUDIENCE, category=TOP_CATEGORY),
                        columns=["user_id", "score"])
category_of = catalogue.set_index("item_id")["category"]
bought = events[(events["event_type"] == "purchase")
                & events["item_id"].map(category_of).eq(TOP_CATEGORY)]
audience["bought before"] = audience["user_id"].isin(set(bought["user_id"]))
fig, ax = plt.subplots(figsize=(7, 4))
ax.barh(audience["user_id"][::-1], audience["score"][::-1],
        color=np.where(audience["bought before"][::-1], "#5a8", "#37b"))
ax.set_xlabel("score")
ax.set_title(f"Top {AUDIENCE} customers for {TOP_CATEGORY!r} (green: bought it before)")
plt.tight_layout()
base = bought["user_id"].nunique() / events["user_id"].nunique()
print(f"{audience['bought before'].mean():.0%} of the audience bought {TOP_CATEGORY!r} before "
      f"(all customers: {base:.0%})")
audience
