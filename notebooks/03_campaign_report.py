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
# # Campaign A/B report
#
# A simulated post-purchase campaign over the synthetic shop, run by the real campaign worker
# (durable steps, guards, recommendations chosen at send time by the served engine), and its A/B
# report: a **recommendation** arm (items the model picks for the customer), a **generic** arm
# (the same e-mail without recommendations) and a **holdout** that gets nothing.
#
# The customers' reactions are simulated from the shop's planted truth: the model is trained on the
# first 80% of the events; the campaign goes to every customer with a purchase; a customer who is
# e-mailed a **complement** of something they bought (the generator's planted pairs, e.g. razor ->
# razor blades) converts with a high probability, everyone else at a small base rate. The
# recommendation arm should therefore convert measurably better.

# %% tags=["parameters"]
USERS, ITEMS, SEED = 1500, 200, 11
BASE_RATE, GENERIC_BUMP, HIT_RATE = 0.04, 0.02, 0.7

# %%
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.pyplot as plt

from recsys.bundle import bundle_of, load_bundle, save_bundle
from recsys.campaigns.recommend import engine_recommender
from recsys.campaigns.report import campaign_report
from recsys.campaigns.service import CampaignService
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.eval import interaction_pairs
from recsys.ingest import EventIngestor
from recsys.models.hybrid import HybridModel
from recsys.recommend import RecommendationEngine
from recsys.store import Store
from recsys.synth import ShopConfig, generate_shop

WORK = Path(tempfile.mkdtemp(prefix="campaign-report-"))
generate_shop(ShopConfig(users=USERS, items=ITEMS, seed=SEED), WORK / "shop")
events = pd.read_parquet(WORK / "shop" / "events.parquet").sort_values("timestamp")
catalogue = pd.read_parquet(WORK / "shop" / "items.parquet")
cut = events["timestamp"].quantile(0.8)
past = events[events["timestamp"] <= cut]
model = HybridModel(dim=32, epochs=5, tune=False, device="cpu", seed=0)
model.fit(Interactions.from_frame(interaction_pairs(past)), items=catalogue,
          users=pd.read_parquet(WORK / "shop" / "users.parquet"))
engine = RecommendationEngine(load_bundle(save_bundle(bundle_of(model, catalogue, metrics={}),
                                                      WORK / "bundle")), device="cpu")
pairs = pd.read_parquet(WORK / "shop" / "truth" / "complements.parquet")
complements = pairs.groupby("item_id")["complement_id"].agg(set).to_dict()
bought = past[past["event_type"] == "purchase"].groupby("user_id")["item_id"].agg(set)
wanted = {u: set().union(*(complements.get(i, set()) for i in items)) for u, items in bought.items()}
print(f"{len(past)} past events; {len(bought)} customers with a purchase; {len(pairs)} pairs")

# %% [markdown]
# ## The campaign, run by the worker

# %%
store = Store.open(f"sqlite:///{WORK / 'recsys.db'}")
store.items.upsert(catalogue.to_dict("records"))
store.events.append(past.to_dict("records"))
service = CampaignService(store)
service.put_template({"id": "recs", "subject": "Picked for you",
                      "text": "{% for r in recommendations %}{{ r.title }}\n{% endfor %}"})
service.put_template({"id": "generic", "subject": "New in the shop", "text": "Come and see."})
definition = {
    "name": "Post-purchase A/B", "trigger": {"type": "api"}, "attribution_days": 7, "start": "ab",
    "steps": {
        "ab": {"type": "split", "arms": [
            {"name": "recommendations", "weight": 1, "next": "recs"},
            {"name": "generic", "weight": 1, "next": "generic"},
            {"name": "holdout", "weight": 1, "holdout": True}]},
        "recs": {"type": "send", "channel": "email", "template": "recs",
                 "recommendations": {"k": 5, "exclude_sent_days": 0}},
        "generic": {"type": "send", "channel": "email", "template": "generic"},
    },
}
service.create(definition, "ab", status="active")
customers = sorted(bought.index.astype(str))
for user in customers:
    store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
start = cut.to_pydatetime().astimezone(UTC) + timedelta(hours=1)
clock = [start]
worker = CampaignWorker(store, {"default": engine_recommender(engine)},
                        campaign_settings(campaign_secret="n" * 32, frequency_cap=10),
                        channels={}, clock=lambda: clock[0], lag_s=0)
print(service.trigger("ab", customers, now=start))
print(worker.run_once())

# %% [markdown]
# ## Simulated reactions: purchases within the attribution window

# %%
rng = random.Random(SEED)
messages = {m["user_id"]: m for m in store.campaigns.messages("ab", limit=100_000)}
arms = {row["user_id"]: row["arm"] for row in messages.values()}
purchases = []
for user in customers:
    message = messages.get(user)
    hit = message is not None and set(message["items"]) & wanted.get(user, set())
    rate = BASE_RATE + (GENERIC_BUMP if message is not None else 0.0)
    if (hit and rng.random() < HIT_RATE) or rng.random() < rate:
        item = sorted(hit)[0] if hit else rng.choice(catalogue["item_id"].tolist())
        at = start + timedelta(days=rng.uniform(0.1, 6.5))
        purchases.append({"user_id": user, "item_id": item, "event_type": "purchase",
                          "timestamp": at.isoformat(), "value": 20.0})
EventIngestor(store).ingest(purchases, now=start + timedelta(days=7))
report = campaign_report(store.engine, "ab")
table = pd.DataFrame(report["arms"]).set_index("arm")
table[["enrolled", "delivered", "conversions", "conversion_rate", "revenue"]]

# %%
for arm in report["arms"]:
    if arm["uplift"]:
        u = arm["uplift"]
        print(f"{arm['arm']:>16}: uplift {u['absolute']:+.3f} "
              f"(95% CI {u['ci95'][0]:+.3f} .. {u['ci95'][1]:+.3f}), p = {u['p_value']:.2g}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
rates = table["conversion_rate"]
errors = [1.96 * (r * (1 - r) / n) ** 0.5 if n else 0 for r, n in zip(rates, table["enrolled"])]
ax.bar(rates.index, rates.values, yerr=errors, capsize=6, color=["#999", "#5a8", "#37b"])
ax.set_ylabel("conversion rate (7 days)")
ax.set_title("Post-purchase campaign: conversion per arm")
plt.tight_layout()
