"""`recsys evaluate`: the fixed protocol over one interactions file, one JSON object per model."""

from __future__ import annotations

import json
from pathlib import Path

import typer

MODEL_HELP = (
    "Comma-separated models: pop, itemknn, ease (baselines), covisit, twotower, retrieval (the "
    "default model's embedding path alone) and default (the served default model)."
)
CONFIG_HELP = "Training config whose `model` section configures default/retrieval."


def _parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or ks[0] <= 0:
        raise typer.BadParameter(f"--k needs positive cut-offs, got {text!r}")
    return ks


def _default_model_kwargs(config: Path | None) -> tuple[dict, int]:
    """The `model` section and seed of the training configuration (defaults when absent)."""
    if config is None:
        candidate = Path("configs/train.yaml")
        if not candidate.exists():
            return {}, 42
        config = candidate
    from training.config import load_config

    parsed = load_config(config)
    return dict(parsed.model), parsed.seed


def _make_model(name: str, device: str, model_kwargs: dict, seed: int, k: int = 50):
    from recsys.models import MODELS

    if name not in MODELS:
        raise typer.BadParameter(
            f"unknown model {name!r}; choose from {', '.join(MODELS)}", param_hint="--models"
        )
    if name == "default":  # the served path: bundle -> engine -> candidates -> scores
        from recsys.recommend.evaluation import ServedModel

        return ServedModel(**model_kwargs, k=max(k, 50), device=device, seed=seed)
    if name == "retrieval":
        return MODELS[name](**model_kwargs, device=device, seed=seed)
    return MODELS[name](device=device)


def evaluate(
    interactions: Path = typer.Option(
        ...,
        "--interactions",
        help="CSV/Parquet events file, MovieLens u.data/ratings.csv or the Groceries CSV.",
    ),
    models: str = typer.Option("pop,itemknn,ease", "--models", help=MODEL_HELP),
    k: str = typer.Option("10,20", "--k", help="Comma-separated cut-offs."),
    device: str = typer.Option(
        None, "--device", help="auto, cpu or cuda (default RECSYS_DEVICE or auto)."
    ),
    delimiter: str = typer.Option(
        None, "--delimiter", help="CSV field separator, e.g. ';' (default ',', tab for .tsv)."
    ),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model on stdout."),
) -> None:
    """Evaluate models under the fixed temporal protocol (last 20% per user held out)."""
    from recsys.data.adapters import load_dataset
    from recsys.device import DEVICE_CHOICES, resolve_device
    from recsys.eval import evaluate_model, temporal_split
    from recsys.settings import get_settings

    device = device or get_settings().device
    if device not in DEVICE_CHOICES:
        choices = ", ".join(DEVICE_CHOICES)
        raise typer.BadParameter(f"choose one of {choices}", param_hint="--device")
    resolve_device(device)  # no GPU for cuda: one clear error before any work
    ks = _parse_ks(k)
    names = [name.strip() for name in models.split(",") if name.strip()]
    model_kwargs, seed = _default_model_kwargs(config)
    instances = [_make_model(n, device, model_kwargs, seed, max(ks)) for n in names]
    dataset = load_dataset(interactions, delimiter=delimiter)
    split = temporal_split(dataset.events)
    for model in instances:
        result = evaluate_model(
            model, split, ks=ks, items=dataset.items, users=dataset.users, progress=not as_json
        )
        if as_json:
            typer.echo(json.dumps(result))
        else:
            metrics = "  ".join(f"{key}={value:.4f}" for key, value in result.items() if "@" in key)
            typer.echo(f"{result['model']:<10} {metrics}  fit={result['fit_seconds']:.2f}s")
