"""Cross-sell quality on the Groceries baskets: popularity, co-occurrence and the engine.

    python benchmarks/crosssell.py [--data DIR] [--json] [--seed 0]

Protocol (../shared/data/README.md): a basket is (Member_number, Date), i.e. the ``session_id``
that ``recsys.data.adapters.load_dataset`` gives the Groceries file. The baskets of the last 20% of
dates are the test period; in each test basket with at least two distinct items one item, drawn
with a seeded generator, is held out and the models rank items given the rest of the basket (its
items excluded from the ranking). HitRate@10 and MRR@10 over those baskets.

Every model is fitted only on the baskets before the test period:

* ``pop``: items by the number of training baskets holding them;
* ``cooccurrence``: sum over the basket's items of the item-item basket co-occurrence counts
  (ties by popularity);
* ``engine``: the full served pipeline: the default model (``HybridModel``) fitted on the training
  events -> serving bundle -> ``RecommendationEngine.cross_sell`` with every filter off.

The default model tunes its cross-sell weights itself, on a validation split of its training
data. On top of that the benchmark chooses, on a validation period (the last 20% of the training
dates, models fitted on the dates before it), the half-life of the model's recency-weighted
cross-sell popularity prior (``cross_sell_prior.half_life_days``) and then the cross-sell weights,
by HitRate@10 on the validation baskets, moving only on gains beyond one paired standard error
(and keeping a blend only when it beats plain popularity by two, as the model's own search does).
The test baskets are only scored, once; ``engine_untuned`` is the model as fitted, without that
step.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from recsys.bundle import bundle_of
from recsys.data.adapters import load_dataset
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.models.hybrid import HybridModel
from recsys.recommend import Filters, RecommendationEngine

logger = logging.getLogger("benchmarks.crosssell")

K = 10
PERIOD = 0.2
OFF = Filters(exclude_purchased=False, in_stock=False)
CSV = "Groceries_dataset.csv"
HALF_LIVES = (7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0)
WEIGHT_GRID = {"covisit": (0.0, 0.5, 1.0, 2.0), "embedding": (0.0, 0.25, 0.5),
               "pop": (0.1, 0.5, 1.0)}  # fmt: skip
POP_ONLY = {"covisit": 0.0, "embedding": 0.0, "pop": 1.0}
BASELINE_Z = 2.0


def default_data_dir() -> Path:
    repo_default = Path(__file__).resolve().parents[2] / "shared" / "data"
    root = Path(os.environ.get("RECSYS_DATA_DIR", repo_default))
    return root / "groceries"


def split_dates(events: pd.DataFrame, fraction: float = PERIOD):
    """(before, period): the events of the last ``fraction`` of distinct dates, and the rest."""
    dates = np.sort(events["timestamp"].unique())
    n_period = max(1, int(np.floor(fraction * len(dates))))
    first = dates[len(dates) - n_period]
    late = (events["timestamp"] >= first).to_numpy()
    return events[~late], events[late]


def held_out_baskets(events: pd.DataFrame, seed: int) -> list[tuple[list[str], str]]:
    """(rest of the basket, held-out item) per basket with >= 2 distinct items (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for _, items in events.groupby("session_id", sort=True)["item_id"]:
        distinct = sorted(set(items.astype(str)))
        if len(distinct) < 2:
            continue
        target = distinct[int(rng.integers(len(distinct)))]
        out.append(([i for i in distinct if i != target], target))
    return out


def basket_table(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item vocabulary, basket code, item code) of the distinct (basket, item) pairs."""
    pairs = events[["session_id", "item_id"]].astype(str).drop_duplicates()
    items, item_code = np.unique(pairs["item_id"].to_numpy(), return_inverse=True)
    _, basket_code = np.unique(pairs["session_id"].to_numpy(), return_inverse=True)
    return items, basket_code, item_code


class Popularity:
    """Items by the number of training baskets holding them."""

    name = "pop"

    def __init__(self, train: pd.DataFrame) -> None:
        self.items, _, item_code = basket_table(train)
        self.counts = np.bincount(item_code, minlength=len(self.items)).astype(np.float64)
        self.position = {item: i for i, item in enumerate(self.items)}

    def scores(self, rest: list[str]) -> np.ndarray:
        return self.counts.copy()

    def rank(self, rest: list[str], k: int = K) -> list[str]:
        scores = self.scores(rest)
        known = [self.position[i] for i in rest if i in self.position]
        scores[known] = -np.inf
        order = np.lexsort((np.arange(len(scores)), -self.counts, -scores))[:k]
        return [str(self.items[i]) for i in order if np.isfinite(scores[i])]


class CoOccurrence(Popularity):
    """Sum of basket co-occurrence counts with the basket's items (ties by popularity)."""

    name = "cooccurrence"

    def __init__(self, train: pd.DataFrame) -> None:
        super().__init__(train)
        _, basket_code, item_code = basket_table(train)
        member = np.zeros((basket_code.max() + 1, len(self.items)), dtype=np.float32)
        member[basket_code, item_code] = 1.0
        self.counts_matrix = member.T @ member
        np.fill_diagonal(self.counts_matrix, 0.0)

    def scores(self, rest: list[str]) -> np.ndarray:
        known = [self.position[i] for i in rest if i in self.position]
        return self.counts_matrix[known].sum(axis=0).astype(np.float64)


class EngineCrossSell:
    """The served pipeline: default model -> bundle -> engine.cross_sell (filters off).

    ``half_life_days`` sets the model's recency-weighted cross-sell popularity prior and
    ``weights`` its cross-sell weights (None: what the model chose when fitting).
    """

    name = "engine"

    def __init__(self, train: pd.DataFrame, items, seed: int) -> None:
        started = time.perf_counter()
        self.model = HybridModel(seed=seed, device="cpu")
        self.model.fit(Interactions.from_frame(train), items=items)
        self.bundle = bundle_of(self.model, items)
        self.fit_seconds = time.perf_counter() - started
        self.fallback = Popularity(train)
        self.configure(None, None)

    def configure(self, half_life_days: float | None, weights: dict | None) -> None:
        config = dict(self.bundle.config)
        config["cross_sell_prior"] = {"half_life_days": half_life_days}
        if weights is not None:
            config["cross_sell_weights"] = dict(weights)
        bundle = dataclasses.replace(self.bundle, config=config)
        self.engine = RecommendationEngine(bundle, device="cpu", index_kind="flat")
        self.known = set(self.engine.item_ids)

    @property
    def weights(self) -> dict:
        return dict(self.engine.scorer.cross_weights)

    def rank(self, rest: list[str], k: int = K) -> list[str]:
        known = [i for i in rest if i in self.known]
        if not known:  # nothing in the basket is known: what the engine has is popularity
            return self.fallback.rank(rest, k)
        return self.engine.cross_sell(known, k=k, filters=OFF).item_ids


def hits(ranker, baskets: list[tuple[list[str], str]], k: int = K) -> np.ndarray:
    return np.array([float(target in ranker.rank(rest, k)) for rest, target in baskets])


def tune(inner: pd.DataFrame, baskets, items, seed: int) -> dict:
    """Cross-sell prior half-life, then weights, chosen on validation baskets (never the test).

    A candidate replaces the current choice only when it gains more than one paired standard
    error of HitRate@10 over the validation baskets, and the final weights must beat plain
    popularity (with the chosen prior) by ``BASELINE_Z`` standard errors.
    """
    engine = EngineCrossSell(inner, items, seed)
    current = {"half_life_days": None, "weights": engine.weights}
    best = hits(engine, baskets)
    trials = [{"half_life_days": None, "weights": None, "hit_rate": float(best.mean())}]

    def consider(half_life, weights) -> None:
        nonlocal best
        engine.configure(half_life, weights)
        found = hits(engine, baskets)
        trials.append({"half_life_days": half_life, "weights": weights,
                       "hit_rate": round(float(found.mean()), 5)})  # fmt: skip
        gain = found - best
        se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
        if gain.mean() > max(se, 1e-12):
            best = found
            current.update(half_life_days=half_life, weights=engine.weights)

    for half_life in HALF_LIVES:
        consider(half_life, current["weights"])
    for values in itertools.product(*WEIGHT_GRID.values()):
        consider(current["half_life_days"], dict(zip(WEIGHT_GRID, values, strict=True)))
    # Occam's razor, as the model's own search does: a blend must beat the plain (recency-
    # weighted) popularity prior clearly, by BASELINE_Z paired standard errors, or it goes
    engine.configure(current["half_life_days"], POP_ONLY)
    plain = hits(engine, baskets)
    gain = best - plain
    se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    if current["weights"] != POP_ONLY and gain.mean() <= BASELINE_Z * max(se, 1e-12):
        current["weights"], best = POP_ONLY, plain
    return current | {"validation_hit_rate": round(float(best.mean()), 5), "trials": len(trials),
                      "model_weights": trials[0]}  # fmt: skip


def score(ranker, baskets: list[tuple[list[str], str]], k: int = K) -> dict:
    """HitRate@k and MRR@k of ``ranker`` over held-out baskets."""
    hits, reciprocal = np.zeros(len(baskets)), np.zeros(len(baskets))
    for row, (rest, target) in enumerate(baskets):
        ranked = ranker.rank(rest, k)
        assert len(ranked) == len(set(ranked)) and not set(ranked) & set(rest)
        if target in ranked:
            hits[row] = 1.0
            reciprocal[row] = 1.0 / (ranked.index(target) + 1)
    return {
        f"hit_rate@{k}": round(float(hits.mean()), 5),
        f"mrr@{k}": round(float(reciprocal.mean()), 5),
        "hit_rate_se": round(float(hits.std(ddof=1) / np.sqrt(len(hits))), 5),
    }


def run(path: Path, seed: int = 0) -> dict:
    dataset = load_dataset(path)
    events = dataset.events
    train, test = split_dates(events)
    inner, validation = split_dates(train)
    test_baskets = held_out_baskets(test, seed)
    validation_baskets = held_out_baskets(validation, seed)
    logger.info("%d train / %d test events; %d test baskets, %d validation baskets",
                len(train), len(test), len(test_baskets), len(validation_baskets))  # fmt: skip
    results = {
        "data": str(path),
        "seed": seed,
        "train_events": len(train),
        "test_events": len(test),
        "test_baskets": len(test_baskets),
        "validation_baskets": len(validation_baskets),
        "test_period_start": str(test["timestamp"].min().date()),
    }
    models = {}
    for cls in (Popularity, CoOccurrence):
        models[cls.name] = score(cls(train), test_baskets)
    chosen = tune(inner, validation_baskets, dataset.items, seed)
    engine = EngineCrossSell(train, dataset.items, seed)
    models["engine_untuned"] = score(engine, test_baskets)
    models["engine_untuned"]["cross_sell_weights"] = engine.weights
    engine.configure(chosen["half_life_days"], chosen["weights"])
    models["engine"] = score(engine, test_baskets)
    models["engine"] |= {"fit_seconds": round(engine.fit_seconds, 1),
                         "cross_sell_weights": engine.weights,
                         "cross_sell_prior_half_life_days": chosen["half_life_days"],
                         "validation_hit_rate": chosen["validation_hit_rate"],
                         "validation_trials": chosen["trials"]}  # fmt: skip
    results["models"] = models
    pop = models["pop"][f"hit_rate@{K}"]
    results["engine_over_pop"] = round(models["engine"][f"hit_rate@{K}"] / max(pop, 1e-12), 4)
    results["engine_over_pop_mrr"] = round(
        models["engine"][f"mrr@{K}"] / max(models["pop"][f"mrr@{K}"], 1e-12), 4
    )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir(),
                        help=f"folder holding {CSV}")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    path = args.data / CSV if args.data.is_dir() else args.data
    if not path.exists():
        parser.error(f"{path} does not exist (set --data to the folder holding {CSV})")
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    results = run(path, args.seed)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{results['test_baskets']} test baskets from {results['test_period_start']}")
    for name, row in results["models"].items():
        print(f"{name:<15} HitRate@{K}={row[f'hit_rate@{K}']:.4f} (se {row['hit_rate_se']:.4f})"
              f"  MRR@{K}={row[f'mrr@{K}']:.4f}")  # fmt: skip
    engine = results["models"]["engine"]
    print(f"engine: cross-sell prior half-life {engine['cross_sell_prior_half_life_days']} days, "
          f"weights {json.dumps(engine['cross_sell_weights'])} (chosen on validation, HitRate@10 "
          f"{engine['validation_hit_rate']:.4f})")  # fmt: skip
    print(f"engine / pop: HitRate {results['engine_over_pop']:.3f}x, "
          f"MRR {results['engine_over_pop_mrr']:.3f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
