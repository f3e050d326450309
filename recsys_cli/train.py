"""`recsys train --config FILE`: the batch training job (see training/job.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer


def train(
    config: Path = typer.Option(..., "--config", help="Training YAML, e.g. configs/train.yaml."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    from_store: bool = typer.Option(
        False,
        "--from-store",
        help="Train on the events, catalogue and customers in the store (RECSYS_DATABASE_URL "
        "or data.database_url) instead of the config's files.",
    ),
) -> None:
    """Train the default model, evaluate it with baselines under the fixed protocol, log to MLflow,
    register a version (alias challenger) and promote it to champion only if it is better."""
    from training.config import load_config
    from training.job import run_training

    logging.getLogger("recsys").setLevel(logging.INFO)
    logging.getLogger("training").setLevel(logging.INFO)
    # A bad config exits 2, an unreachable registry 1 (recsys_cli.main maps the error kinds).
    parsed = load_config(config, from_store=from_store)
    outcome = run_training(parsed, progress=not no_progress and not as_json)
    if as_json:
        typer.echo(json.dumps({
            "run_id": outcome.run_id, "version": outcome.version, "promoted": outcome.promoted,
            "metric": outcome.metric, "value": outcome.value,
            "champion_version": outcome.champion_version,
            "champion_value": outcome.champion_value, "metrics": outcome.metrics,
            "params": outcome.params,
        }))  # fmt: skip
        return
    rows = [("default", outcome.metrics)] + [(b["model"], b) for b in outcome.baselines]
    ks = sorted({key.split("@")[1] for key in outcome.metrics if key.startswith("ndcg@")})
    header = "  ".join(f"recall@{k:<3} ndcg@{k:<3}" for k in ks)
    typer.echo(f"{'model':<12}{header}")
    retrieval = {k.removeprefix("retrieval."): v for k, v in outcome.metrics.items()
                 if k.startswith("retrieval.")}  # fmt: skip
    rows.insert(1, ("retrieval", retrieval))
    nan = float("nan")
    for name, values in rows:
        cells = "  ".join(
            f"{values.get(f'recall@{k}', nan):<10.4f}{values.get(f'ndcg@{k}', nan):<9.4f}"
            for k in ks
        )
        typer.echo(f"{name:<12}{cells}")
    typer.echo(outcome.summary())
