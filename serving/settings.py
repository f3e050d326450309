"""Service settings: one pydantic-settings class, read from RECSYS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service reads from its environment (prefix ``RECSYS_``)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/recsys.db",
        description="SQLAlchemy URL of the event/profile/key store (SQLite file or PostgreSQL).",
    )
    mlflow_tracking_uri: str = Field(
        default="sqlite:///var/mlflow.db", description="MLflow tracking and registry URI."
    )
    model_uri: str = Field(
        default="models:/recsys@champion",
        description="Registered model to serve; a local bundle directory also works.",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="First admin API key; generated and printed once when unset."
    )
    var_dir: str = Field(default="var", description="Where downloaded models are cached.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    index: Literal["auto", "flat", "hnsw", "ivf", "torch"] = "auto"
    model_replicas: int = Field(default=1, ge=1)
    ingress_replicas: int = Field(default=1, ge=1)
    replica_num_cpus: float = Field(default=0.5, gt=0)
    max_events_per_request: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    max_k: int = Field(default=200, ge=1)
    session_events: int = Field(
        default=50, ge=0, description="Most recent stored events used as the live session."
    )
    suppress_seconds: float = Field(
        default=3600.0, ge=0, description="Window of the 'recently recommended' suppression filter."
    )
    batch_max_size: int = Field(default=32, ge=1)
    batch_wait_timeout_s: float = Field(default=0.002, ge=0)
    log_level: str = "INFO"


def _absolute_sqlite(url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def resolved(settings: Settings) -> Settings:
    """Relative paths made absolute, so Ray workers (other working directories) agree."""
    model_uri = settings.model_uri
    if not model_uri.startswith("models:/") and Path(model_uri).exists():
        model_uri = str(Path(model_uri).resolve())
    return settings.model_copy(
        update={
            "database_url": _absolute_sqlite(settings.database_url),
            "mlflow_tracking_uri": _absolute_sqlite(settings.mlflow_tracking_uri),
            "model_uri": model_uri,
            "var_dir": str(Path(settings.var_dir).resolve()),
        }
    )
