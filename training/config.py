"""The training job's configuration: one YAML file, validated with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from recsys.errors import InvalidInputError


class ConfigError(InvalidInputError):
    """A training configuration that cannot be used; the message names the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    source: Literal["files", "store"] = Field(
        default="files",
        description="files: the paths below; store: events, items and customers collected by "
        "the service (database_url, else RECSYS_DATABASE_URL).",
    )
    interactions: Path | None = Field(
        default=None,
        description="Events file, MovieLens u.data/ratings.csv or Groceries (source: files).",
    )
    items: Path | None = None
    users: Path | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    delimiter: str | None = None
    database_url: str | None = Field(
        default=None,
        description="The store read with source: store, and whose erasures are excluded "
        "(default RECSYS_DATABASE_URL).",
    )

    @model_validator(mode="after")
    def _interactions_for_files(self) -> DataConfig:
        if self.source == "files" and self.interactions is None:
            raise ValueError("interactions: required key is missing (or set source: store)")
        return self


class EvaluationConfig(_Strict):
    k: list[int] = Field(default_factory=lambda: [10, 20])
    metric: str = "ndcg@20"
    baselines: list[Literal["pop", "itemknn", "ease"]] = Field(
        default_factory=lambda: ["pop", "ease"]
    )

    @field_validator("k")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if not ks or min(ks) <= 0:
            raise ValueError("needs at least one positive cut-off")
        return sorted(set(ks))

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        name, _, k = metric.partition("@")
        if name not in ("ndcg", "recall") or not k.isdigit():
            raise ValueError(f"{metric!r} is not 'ndcg@K' or 'recall@K'")
        return metric


class MlflowConfig(_Strict):
    tracking_uri: str | None = Field(
        default=None,
        description="Default RECSYS_MLFLOW_TRACKING_URI, else sqlite:///var/mlflow.db.",
    )
    experiment: str = "recsys"
    model_name: str = "recsys"


class PromotionConfig(_Strict):
    min_improvement: float = Field(default=0.0, ge=0.0)


class BundleConfig(_Strict):
    recent_events_per_user: int = Field(default=20, ge=0)


class TrainConfig(_Strict):
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataConfig
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    model: dict = Field(default_factory=dict, description="Parameters of the default model.")
    bundle: BundleConfig = Field(default_factory=BundleConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)

    @property
    def metric_k(self) -> int:
        return int(self.evaluation.metric.split("@")[1])


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict, source: str = "<config>") -> TrainConfig:
    """Validate a configuration mapping."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ConfigError(f"{source}: expected a mapping at the top level, got {kind}")
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    if config.metric_k not in config.evaluation.k:
        config.evaluation.k = sorted({*config.evaluation.k, config.metric_k})
    return config


def load_config(path: str | Path, *, from_store: bool = False) -> TrainConfig:
    """Read and validate a YAML training configuration; ``from_store`` sets ``data.source``
    to ``store`` (the file paths are then ignored)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: configuration file does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    raw = raw or {}
    if from_store and isinstance(raw, dict):
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        raw = {**raw, "data": {**data, "source": "store"}}
    return parse_config(raw, str(path))
