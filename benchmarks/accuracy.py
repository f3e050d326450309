"""Accuracy of every model under the fixed protocol on one interactions file.

    python benchmarks/accuracy.py --interactions ../shared/data/ml-100k/u.data [--json]

Prints recall@K / NDCG@K (K = 10, 20) of pop, itemknn, ease, co-visitation alone, the default
model's embedding retrieval path (its served query vector . item vectors, nothing else) and the
default model, with fit seconds, plus the two-tower training throughput (samples/s) of the
default model's final fit. ``items.parquet`` / ``users.parquet`` beside a canonical events file
are used as side features. Nothing is tuned on the test split: the default model chooses its
parameters on a validation split carved from the training data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from recsys.data.adapters import load_dataset
from recsys.data.loaders import load_items, load_users
from recsys.eval import evaluate_model, temporal_split
from recsys.eval.evaluate import encode_split, rank_metrics
from recsys.models import BASELINES, CoVisitationModel, HybridModel

logger = logging.getLogger("benchmarks.accuracy")


def load(path: Path):
    """The data set plus item / user tables found beside a canonical events file."""
    dataset = load_dataset(path)
    for attr, loader in (("items", load_items), ("users", load_users)):
        if getattr(dataset, attr) is None:
            for suffix in (".parquet", ".csv"):
                side = path.with_name(attr + suffix)
                if side.exists() and side != path:
                    setattr(dataset, attr, loader(side))
                    break
    return dataset


def run(path: Path, ks=(10, 20), device: str = "auto", progress: bool = False) -> list[dict]:
    """One result dict per model."""
    dataset = load(path)
    split = temporal_split(dataset.events)
    extra = {"items": dataset.items, "users": dataset.users}
    results = []
    for cls in BASELINES.values():
        results.append(evaluate_model(cls(device=device), split, ks=ks, **extra))
    results.append(evaluate_model(CoVisitationModel(device=device), split, ks=ks, **extra))

    default = HybridModel(device=device, progress=progress)
    result = evaluate_model(default, split, ks=ks, **extra)
    train, test = encode_split(split)
    started = time.perf_counter()
    retrieval = rank_metrics(default.retrieval_scores, train, test, ks=ks)
    results.append(
        {
            "model": "retrieval",
            **{k: round(v, 6) for k, v in retrieval.items() if "@" in k},
            "n_eval_users": retrieval["n_eval_users"],
            "fit_seconds": result["fit_seconds"],
            "note": "the default model's query vector . item vectors (same fit)",
            "score_seconds": round(time.perf_counter() - started, 3),
        }
    )
    tt = default.report["two_tower"]
    result |= {
        "params": default.report["params"],
        "validation": default.report["search"],
        "two_tower_samples_per_second": tt["samples_per_second"],
        "two_tower_device": tt["device"],
        "two_tower_samples": tt["samples"],
        "two_tower_seconds": tt["seconds"],
    }
    results.append(result)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=Path, required=True, help="events / u.data / CSV")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    torch.manual_seed(0)
    results = run(args.interactions, device=args.device, progress=not args.json)
    for r in results:
        if args.json:
            print(json.dumps(r))
            continue
        metrics = "  ".join(
            f"{k}={r[k]:.4f}" for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
        )
        print(f"{r['model']:<10} {metrics}  fit={r['fit_seconds']:.2f}s")
    if not args.json:
        tt = results[-1]
        print(
            f"two-tower training: {tt['two_tower_samples_per_second']:,.0f} samples/s on "
            f"{tt['two_tower_device']} ({tt['two_tower_samples']:,} samples in "
            f"{tt['two_tower_seconds']:.1f}s); chosen params: {json.dumps(tt['params'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
