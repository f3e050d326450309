"""The training job's configuration: one YAML file, validated with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recsys.errors import InvalidInputError


class ConfigError(InvalidInputError):
    """A training configuration that cannot be used; the message names the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    interactions: Path = Field(
        description="Events file, MovieLens u.data/ratings.csv or Groceries."
    )
    items: Path | None = None
    users: Path | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    delimiter: str | None = None
    database_url: str | None = Field(
        default=None, description="Store whose erasures are excluded (default RECSYS_DATABASE_URL)."
    )


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
        message = item["msg"]
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


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML training configuration."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: configuration file does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw or {}, str(path))
