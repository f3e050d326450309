"""Cross-sell against a synthetic shop's planted complements, similar items and co-purchase alike.

    python benchmarks/complements.py --data DIR [--json] [--seed 0] [--users 300]

``DIR`` is a shop written by ``recsys generate`` (events, items, truth/complements.parquet). The
default model is fitted on every event of the shop (its own hyper-parameters chosen on a
validation split carved from those events; the truth file is only read to score). For every
planted pair (anchor -> complement), with every filter off:

* ``cross_sell``: ``RecommendationEngine.cross_sell([anchor])``; an anchor nobody interacted with
  is unknown to the model and is asked with its catalogue category (``categories=``);
* ``similar``: ``RecommendationEngine.similar_items(anchor)`` (unknown anchors count as misses);
* ``copurchase``: plain counting of items purchased in the same session as the anchor (ties by
  purchase count), the baseline.

Reported: HitRate@10 and MRR@10 of the planted complement, and the share of the answers in the
anchor's own category. Post-purchase: ``--users`` sampled customers each "buy" an anchor of a
durable category (the shop's ``consumable`` attribute, read only here, to check) as a new event;
the share of their next personalised top 10 in the purchased category and how often the planted
complement is in it, against the same customers' answers after merely viewing the anchor.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from recsys.bundle import bundle_of
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.models.hybrid import HybridModel
from recsys.recommend import Filters, RecommendationEngine

logger = logging.getLogger("benchmarks.complements")

K = 10
OFF = Filters(exclude_purchased=False, in_stock=False)
NOW = 4_000_000_000.0  # after every event of a generated shop


def load(data: Path):
    events = pd.read_parquet(data / "events.parquet")
    items = pd.read_parquet(data / "items.parquet")
    truth = pd.read_parquet(data / "truth" / "complements.parquet")
    return events, items, truth


def rank_stats(answers: list[list[str]], truth, category: pd.Series) -> dict:
    hits, reciprocal, same = [], [], []
    for ranked, (anchor, target) in zip(answers, truth, strict=True):
        position = ranked.index(target) + 1 if target in ranked else 0
        hits.append(position > 0)
        reciprocal.append(1.0 / position if position else 0.0)
        same.append(np.mean([category[i] == category[anchor] for i in ranked]) if ranked else 0)
    return {
        f"hit_rate@{K}": round(float(np.mean(hits)), 4),
        f"mrr@{K}": round(float(np.mean(reciprocal)), 4),
        "same_category_share": round(float(np.mean(same)), 4),
    }


def copurchase(events: pd.DataFrame):
    """Items by how often they were purchased in the anchor's sessions (ties by purchases)."""
    bought = events[events["event_type"] == "purchase"][["session_id", "item_id"]]
    bought = bought.drop_duplicates()
    pairs = bought.merge(bought, on="session_id")
    pairs = pairs[pairs["item_id_x"] != pairs["item_id_y"]]
    counts = pairs.groupby(["item_id_x", "item_id_y"]).size()
    popularity = bought["item_id"].value_counts()

    def rank(anchor: str) -> list[str]:
        if anchor not in counts.index.get_level_values(0):
            return list(popularity.index.drop(anchor, errors="ignore")[:K])
        row = counts.loc[anchor].to_frame("n").assign(p=popularity)
        order = row.sort_values(["n", "p"], ascending=False).index[:K]
        rest = popularity.index.drop([anchor, *order], errors="ignore")
        return (list(order) + list(rest))[:K]

    return rank


def post_purchase(engine, truth, category, consumable, users: int, seed: int) -> dict:
    durable = truth[~truth["item_id"].map(category).map(consumable).astype(bool)]
    known = durable[durable["item_id"].isin(set(engine.item_ids))]
    rng = np.random.default_rng(seed)
    rows = known.iloc[rng.integers(0, len(known), users)]
    customers = rng.choice(engine.user_ids, users, replace=False)
    out = {}
    for kind in ("view", "purchase"):
        same, hit = [], []
        for user, (anchor, target) in zip(customers, rows[["item_id", "complement_id"]].values,
                                          strict=True):  # fmt: skip
            event = [{"item_id": anchor, "timestamp": NOW, "event_type": kind}]
            ranked = engine.recommend(str(user), k=K, events=event, filters=OFF).item_ids
            same.append(np.mean([category[i] == category[anchor] for i in ranked]))
            hit.append(target in ranked)
        out[f"after_{kind}"] = {
            "same_category_share": round(float(np.mean(same)), 4),
            f"complement_hit@{K}": round(float(np.mean(hit)), 4),
        }
    out["customers"] = users
    return out


def run(data: Path, seed: int = 0, users: int = 300) -> dict:
    events, items, truth = load(data)
    category = items.set_index("item_id")["category"]
    consumable = (
        items.assign(c=items["attributes"].str.contains('"consumable":true'))
        .groupby("category")["c"]
        .first()
    )
    started = time.perf_counter()
    model = HybridModel(seed=seed, device="cpu")
    model.fit(Interactions.from_frame(events), items=items)
    fit_seconds = time.perf_counter() - started
    engine = RecommendationEngine(bundle_of(model, items), device="cpu", index_kind="flat")
    pairs = list(truth[["item_id", "complement_id"]].itertuples(index=False, name=None))
    known = set(engine.item_ids)
    cross, similar = [], []
    for anchor, _ in pairs:
        hint = {anchor: category[anchor]}
        cross.append(engine.cross_sell([anchor], k=K, filters=OFF, categories=hint).item_ids)
        similar.append(
            engine.similar_items(anchor, k=K, filters=OFF).item_ids if anchor in known else []
        )
    baseline = copurchase(events)
    results = {
        "data": str(data),
        "seed": seed,
        "pairs": len(pairs),
        "unknown_anchors": int(sum(a not in known for a, _ in pairs)),
        "fit_seconds": round(fit_seconds, 1),
        "validation": model.report.get("search", {}),
        "cross_sell": rank_stats(cross, pairs, category),
        "similar": rank_stats(similar, pairs, category),
        "copurchase": rank_stats([baseline(a) for a, _ in pairs], pairs, category),
        "post_purchase": post_purchase(engine, truth, category, consumable, users, seed),
        "complement_params": model.complement_params,
    }
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a `recsys generate` folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=300, help="post-purchase customers")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if not (args.data / "truth" / "complements.parquet").exists():
        parser.error(f"{args.data} is not a generated shop (no truth/complements.parquet)")
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    results = run(args.data, args.seed, args.users)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{results['pairs']} planted pairs ({results['unknown_anchors']} unknown anchors), "
          f"fit {results['fit_seconds']} s")  # fmt: skip
    for name in ("cross_sell", "similar", "copurchase"):
        row = results[name]
        print(f"{name:<11} HitRate@{K}={row[f'hit_rate@{K}']:.4f}  MRR@{K}={row[f'mrr@{K}']:.4f}"
              f"  same category {row['same_category_share']:.1%}")  # fmt: skip
    for kind, row in results["post_purchase"].items():
        if isinstance(row, dict):
            print(f"post-purchase {kind:<14} same category {row['same_category_share']:.1%}, "
                  f"complement in top {K}: {row[f'complement_hit@{K}']:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
