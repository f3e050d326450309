"""The training job: load -> split -> fit -> evaluate -> log -> register -> gate promotion.

1. The MLflow URI is checked before anything is trained.
2. The default model is fitted on the protocol's train split (its blend is tuned on a validation
   split carved from that train split) and scored on the holdout; baselines are scored too.
3. The champion's holdout metric on the same data: read from its version tags when it was
   trained on identical data, else its configuration is refitted on this split and scored.
4. The served model is refitted on all interactions with the parameters chosen in step 2, saved
   as a self-contained bundle, registered as a new version with alias ``challenger``, and given
   alias ``champion`` only if it beats the champion by more than ``promotion.min_improvement``.
A failed run registers nothing (a version registered before the failure is deleted again).
"""

from __future__ import annotations

import inspect
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recsys.bundle import ServingBundle, bundle_of, load_bundle, save_bundle
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.eval import evaluate_model, interaction_pairs, temporal_split
from recsys.eval.evaluate import encode_split, rank_metrics
from recsys.models import BASELINES
from recsys.models.hybrid import HybridModel
from recsys.registry import CHALLENGER, CHAMPION, Registry
from training.config import ConfigError, TrainConfig
from training.data import load_training_data

logger = logging.getLogger(__name__)

MODEL_KEYS = set(inspect.signature(HybridModel.__init__).parameters) - {
    "self",
    "device",
    "seed",
    "progress",
}


@dataclass
class TrainOutcome:
    """What one training run did."""

    run_id: str
    version: str
    promoted: bool
    metric: str
    value: float
    champion_version: str | None
    champion_value: float | None
    metrics: dict
    baselines: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def summary(self) -> str:
        ours = f"{self.metric}={self.value:.4f}"
        if self.champion_version is None:
            verdict = "promoted to champion (there was none)"
        elif self.promoted:
            verdict = (
                f"promoted to champion: beats v{self.champion_version} ({self.champion_value:.4f})"
            )
        else:
            verdict = (
                f"NOT promoted: does not beat champion v{self.champion_version} "
                f"({self.champion_value:.4f}); the champion stays"
            )
        return f"registered recsys version {self.version} ({ours}); {verdict}"


def build_model(
    config: TrainConfig,
    params: dict | None = None,
    tune: bool = True,
    progress: bool = False,
    complements: dict | None = None,
) -> HybridModel:
    """The default model with the configuration's ``model`` section (keys checked);
    ``params`` / ``complements``: values chosen by an earlier fit's validation search."""
    unknown = set(config.model) - MODEL_KEYS
    if unknown:
        raise ConfigError(
            "; ".join(
                f"model.{key}: unknown key; expected one of {', '.join(sorted(MODEL_KEYS))}"
                for key in sorted(unknown)
            )
        )
    kwargs = dict(config.model)
    if params is not None:
        kwargs["params"] = params
    if complements is not None:
        kwargs["complements"] = complements
    kwargs["tune"] = tune and kwargs.get("tune", True)
    try:
        return HybridModel(**kwargs, device=config.device, seed=config.seed, progress=progress)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: {exc}") from None


def data_fingerprint(events: pd.DataFrame) -> str:
    """Content hash of the interactions (decides whether holdout metrics are comparable)."""
    cols = [c for c in ("user_id", "item_id", "timestamp", "event_type") if c in events]
    hashed = pd.util.hash_pandas_object(events[cols], index=False).to_numpy()
    return f"{len(events)}-{int(np.bitwise_xor.reduce(hashed)) & 0xFFFFFFFFFFFF:012x}"


def _tag(metric: str) -> str:
    """Version tag holding the holdout metric (MLflow tag names may not contain '@')."""
    return "holdout." + metric.replace("@", "_at_")


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value
    return out


def _retrieval_metrics(model: HybridModel, split, ks) -> dict:
    train, test = encode_split(split)
    metrics = rank_metrics(model.retrieval_scores, train, test, ks=ks)
    return {f"retrieval.{k}": v for k, v in metrics.items() if "@" in k}


def _champion_value(registry, config, split, dataset, fingerprint, progress):
    """(version, holdout metric) of the current champion on this run's data, or (None, None)."""
    champion = registry.alias_version(CHAMPION)
    if champion is None:
        return None, None
    metric = config.evaluation.metric
    tags = champion.tags or {}
    if tags.get("data_fingerprint") == fingerprint and _tag(metric) in tags:
        return str(champion.version), float(tags[_tag(metric)])
    logger.info(
        "champion v%s was trained on other data: refitting its configuration on this "
        "split to compare on the same holdout",
        champion.version,
    )
    bundle = load_bundle(
        registry.download_bundle(f"models:/{registry.model_name}/{champion.version}")
    )
    train_config = bundle.manifest.get("train_config", {})
    champion_config = config.model_copy(update={"model": train_config.get("model", {})})
    model = build_model(
        champion_config, params=train_config.get("params"), tune=False, progress=progress,
        complements=train_config.get("complements"),
    )  # fmt: skip
    result = evaluate_model(
        model, split, ks=config.evaluation.k, items=dataset.items, users=dataset.users
    )
    return str(champion.version), float(result[metric])


def _bundle(model: HybridModel, dataset, config, metrics, params, fingerprint) -> ServingBundle:
    manifest = {
        "train_config": {
            "model": config.model,
            "params": params,
            "complements": model.complement_params,
        },
        "data_fingerprint": fingerprint,
    }
    return bundle_of(model, dataset.items, metrics=metrics, manifest=manifest)


def run_training(config: TrainConfig, progress: bool = True) -> TrainOutcome:
    """Run the whole job; see the module docstring."""
    registry = Registry(
        config.mlflow.tracking_uri,
        experiment=config.mlflow.experiment,
        model_name=config.mlflow.model_name,
    )
    build_model(config)  # configuration errors surface before any data is read
    _seed(config.seed)
    started = time.perf_counter()
    dataset = load_training_data(config, progress=progress)
    split = temporal_split(dataset.events)
    fingerprint = data_fingerprint(dataset.events)
    metric, ks = config.evaluation.metric, config.evaluation.k
    with registry.run(run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}") as active:
        registry.log_params(
            _flat("", config.model_dump(mode="json"), {})
            | {
                "data.fingerprint": fingerprint,
                "data.n_events": len(dataset.events),
                "data.n_train_pairs": len(split.train),
                "data.n_test_pairs": len(split.test),
            }
        )
        model = build_model(config, progress=progress)
        result = evaluate_model(
            model, split, ks=ks, items=dataset.items, users=dataset.users, progress=progress
        )
        params = model.report.get("params", {})
        metrics = {k: v for k, v in result.items() if "@" in k}
        metrics |= _retrieval_metrics(model, split, ks)
        metrics["fit_seconds"] = result["fit_seconds"]
        metrics["two_tower.samples_per_second"] = model.report.get("two_tower", {}).get(
            "samples_per_second", 0.0
        )
        baselines = []
        for name in config.evaluation.baselines:
            scored = evaluate_model(BASELINES[name](device=config.device), split, ks=ks)
            baselines.append(scored)
            metrics |= {f"{name}.{k}": v for k, v in scored.items() if "@" in k}
        registry.log_metrics(metrics)
        registry.log_dict(
            {"params": params, "search": model.report.get("search", {})}, "tuning.json"
        )
        champion_version, champion_value = _champion_value(
            registry, config, split, dataset, fingerprint, progress
        )
        logger.info("refitting on all %d interactions for serving", len(dataset.events))
        final = build_model(config, params=params, tune=False, progress=progress,
                            complements=model.complement_params)  # fmt: skip
        pairs = interaction_pairs(dataset.events)
        # the raw events too: complement statistics learn re-buying, which one row per pair hides
        final.fit(Interactions.from_frame(pairs), items=dataset.items, users=dataset.users,
                  events=dataset.events)  # fmt: skip
        value = float(metrics[metric])
        promoted = (
            champion_value is None or value > champion_value + config.promotion.min_improvement
        )
        with tempfile.TemporaryDirectory(prefix="recsys-train-") as tmp:
            bundle_dir = save_bundle(
                _bundle(final, dataset, config, metrics, params, fingerprint), Path(tmp, "bundle")
            )
            info = registry.log_bundle(bundle_dir)
        version = str(info.registered_model_version)
        try:
            tags = {_tag(metric): value, "data_fingerprint": fingerprint}
            registry.tag_version(version, tags | {"run_id": active.info.run_id})
            registry.set_alias(CHALLENGER, version)
            if promoted:
                registry.set_alias(CHAMPION, version)
            registry.log_metrics(
                {"promoted": int(promoted), "total_seconds": time.perf_counter() - started}
            )
        except BaseException:
            registry.delete_version(version)
            raise
    return TrainOutcome(
        run_id=active.info.run_id,
        version=version,
        promoted=promoted,
        metric=metric,
        value=value,
        champion_version=champion_version,
        champion_value=champion_value,
        metrics=metrics,
        baselines=baselines,
        params=params,
    )
