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
# # Train and compare models
#
# The data scientist's loop on the same library and registry the service uses:
#
# 1. load interactions and split them with the **fixed temporal protocol** (the last 20% of each
#    user's interactions held out);
# 2. train and evaluate **EASE** and the **default model** (the served blend), with **popularity**
#    as a reference, and compare their metrics in a plot;
# 3. run the **training job** twice against an MLflow store and look at the registry: its versions,
#    the `champion` / `challenger` aliases and the promotion (gating) decision of each run.
#
# By default everything runs on a tiny generated shop in a temporary directory, with a throwaway
# MLflow store there, so the notebook runs anywhere in about a minute. Change the parameters below
# to use real data or your own MLflow server.

# %% tags=["parameters"]
import os
import tempfile
from pathlib import Path

# Interactions file (CSV/Parquet events, MovieLens u.data / ratings.csv, Groceries CSV).
# None: a tiny synthetic shop is generated into a temporary directory.
# Real data, e.g. MovieLens 100K (it lives in ../shared/data as seen from the repository root;
# Jupyter's working directory is notebooks/, hence the extra ../):
#   DATA = "../../shared/data/ml-100k/u.data"
#   DATA = Path(os.environ.get("RECSYS_DATA_DIR", "../../shared/data")) / "ml-100k" / "u.data"
DATA = os.environ.get("RECSYS_NOTEBOOK_DATA") or None
SHOP = {"users": 300, "items": 120, "seed": 7}  # size of the generated shop when DATA is None

SEED = 42
DEVICE = "auto"  # auto | cpu | cuda
# The default model's parameters (the `model:` section of configs/train.yaml). Small and quick
# here; use {} for the full defaults on real data.
MODEL = {"dim": 16, "epochs": 3}
CANDIDATE = {**MODEL, "dim": 32}  # the second training run tries this configuration
KS = [10, 20]
METRIC = "ndcg@20"  # the holdout metric that gates promotion

# A scratch directory for this session: the generated shop, the figure and the throwaway MLflow
# store (sqlite, artefacts beside it). RECSYS_MLFLOW_TRACKING_URI, when set, wins.
WORK = Path(tempfile.mkdtemp(prefix="recsys-notebook-"))
MLFLOW_URI = os.environ.get("RECSYS_MLFLOW_TRACKING_URI") or f"sqlite:///{WORK / 'mlflow.db'}"

# %%
import logging
import math
import sys

import matplotlib

if "ipykernel" not in sys.modules and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")  # headless run as a plain script: draw into files, open no window
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from recsys.data.adapters import load_dataset
from recsys.data.loaders import load_items, load_users
from recsys.eval import evaluate_model, temporal_split
from recsys.models import MODELS
from recsys.registry import CHALLENGER, CHAMPION, Registry
from recsys.synth import ShopConfig, generate_shop
from training.config import parse_config
from training.job import run_training

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("training").setLevel(logging.INFO)
print(f"scratch directory: {WORK}\nMLflow store:      {MLFLOW_URI}")

# %% [markdown]
# ## 1. Load the interactions
#
# `load_dataset` recognises the public layouts (MovieLens, Groceries) and canonical event files, and
# validates them. A generated shop also has `items.parquet` and `users.parquet` (category, price,
# customer attributes): the models use them as side features.

# %%
if DATA is None:
    generate_shop(ShopConfig(**SHOP), WORK / "shop")
    DATA = WORK / "shop" / "events.parquet"
DATA = Path(DATA)

dataset = load_dataset(DATA)
ITEMS = DATA.with_name("items.parquet") if dataset.items is None else None
USERS = DATA.with_name("users.parquet") if dataset.users is None else None
if ITEMS is not None and ITEMS.exists():
    dataset.items = load_items(ITEMS)
else:
    ITEMS = None
if USERS is not None and USERS.exists():
    dataset.users = load_users(USERS)
else:
    USERS = None

events = dataset.events
print(
    f"{dataset.name}: {len(events):,} events, {events['user_id'].nunique():,} users, "
    f"{events['item_id'].nunique():,} items"
)
if "event_type" in events:
    display(events["event_type"].value_counts().rename("events").to_frame())
events.head()

# %% [markdown]
# ## 2. Split with the fixed protocol
#
# One row per (user, item) pair (first occurrence); per user the most recent 20% are held out.
# Numbers are comparable with the benchmarks only under this protocol.

# %%
split = temporal_split(events)
print(f"train pairs: {len(split.train):,}   test pairs: {len(split.test):,}")

# %% [markdown]
# ## 3. Train and evaluate
#
# Every model takes `device=` and fits on the train split; `evaluate_model` ranks all training
# items for each test user (their own training items excluded) and reports Recall@K and NDCG@K.
# The default model tunes its blend on a validation split carved from the training data, never on
# the test split.

# %%
candidates = {
    "pop": MODELS["pop"](device=DEVICE),
    "ease": MODELS["ease"](device=DEVICE),
    "default": MODELS["default"](**MODEL, seed=SEED, device=DEVICE),
}
results = [
    evaluate_model(model, split, ks=KS, items=dataset.items, users=dataset.users)
    for model in candidates.values()
]
comparison = pd.DataFrame(results).set_index("model")
metric_columns = [f"{name}@{k}" for k in KS for name in ("recall", "ndcg")]
comparison[metric_columns + ["n_eval_users", "fit_seconds"]]

# %% [markdown]
# ## 4. Compare in a plot

# %%
fig, ax = plt.subplots(figsize=(8, 4))
comparison[metric_columns].T.plot.bar(ax=ax, rot=0)
ax.set_ylabel("score (higher is better)")
ax.set_title(f"{dataset.name}: fixed temporal protocol, {comparison['n_eval_users'].iloc[0]} users")
ax.legend(title="model")
fig.tight_layout()
fig.savefig(WORK / "comparison.png", dpi=100)
plt.show()

best = comparison[METRIC].idxmax()
ratio = comparison.loc["default", METRIC] / comparison.loc["ease", METRIC]
print(f"best on {METRIC}: {best}; default / EASE = {ratio:.3f}")

# %% [markdown]
# ## 5. Train, register and gate with the training job
#
# `run_training` is what `recsys train --config configs/train.yaml` runs: split, fit, evaluate
# (with baselines), log to MLflow, register a version of model `recsys` as a serving bundle with
# alias `challenger`, and move alias `champion` to it **only if it beats the current champion** on
# the holdout metric. The configuration is the YAML file's content as a dict.
#
# For a local sqlite store the experiment's artefacts are kept beside the database file (for the
# default `sqlite:///var/mlflow.db` that is `var/mlartifacts`, as the job does by itself).


# %%
def train_config(model: dict) -> dict:
    """The training job's configuration (configs/train.yaml's keys) for this notebook's data."""
    data = {"interactions": str(DATA)}
    data |= {"items": str(ITEMS)} if ITEMS is not None else {}
    data |= {"users": str(USERS)} if USERS is not None else {}
    return {
        "seed": SEED,
        "device": DEVICE,
        "data": data,
        "evaluation": {"k": KS, "metric": METRIC, "baselines": ["pop", "ease"]},
        "model": model,
        "mlflow": {"tracking_uri": MLFLOW_URI, "experiment": "recsys", "model_name": "recsys"},
    }


if MLFLOW_URI.startswith("sqlite:///"):  # create the experiment with its artefacts beside the db
    store_dir = Path(MLFLOW_URI.removeprefix("sqlite:///")).parent
    Registry(MLFLOW_URI, artifact_root=str(store_dir / "mlartifacts")).experiment_id()

outcomes = []
for label, model in [("first run", MODEL), ("candidate", CANDIDATE)]:
    outcome = run_training(parse_config(train_config(model), source=label), progress=False)
    outcomes.append(outcome)
    print(f"{label}: {outcome.summary()}")

# %% [markdown]
# ## 6. The registry: versions, aliases and the gating decision

# %%
registry = Registry(MLFLOW_URI, model_name="recsys")
tag = "holdout." + METRIC.replace("@", "_at_")
versions = pd.DataFrame(
    [
        {
            "version": row["version"],
            "aliases": ", ".join(row["aliases"]) or "-",
            METRIC: float(row["tags"][tag]) if tag in row["tags"] else math.nan,
            "run_id": row["run_id"],
        }
        for row in registry.versions()
    ]
).set_index("version")
display(versions)

champion, challenger = registry.alias_version(CHAMPION), registry.alias_version(CHALLENGER)
print(f"champion   = version {champion.version if champion else '-'}")
print(f"challenger = version {challenger.version if challenger else '-'}")

# %%
gating = pd.DataFrame(
    [
        {
            "version": int(o.version),
            METRIC: o.value,
            "champion before": o.champion_version or "-",
            "champion's " + METRIC: o.champion_value,
            "promoted": o.promoted,
            "decision": o.summary().split("; ", 1)[1],
        }
        for o in outcomes
    ]
).set_index("version")
gating

# %% [markdown]
# Serving loads `models:/recsys@champion`; a challenger that did not win stays registered for
# inspection (`registry.download_bundle("models:/recsys@challenger")`) but serves no traffic.
# To promote by hand: `registry.set_alias("champion", VERSION)`.
