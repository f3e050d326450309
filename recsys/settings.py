"""What every process shares (serving, training, the CLI, notebooks), read from ``RECSYS_*`` once.

``get_settings()`` returns the one cached :class:`CommonSettings`; the service extends it with its
own fields (``serving.settings.Settings``). Defaults live here and nowhere else: the store URL,
the MLflow URI, the var directory, the device and the data frame backend.

============================  ============================================================
variable                      default
============================  ============================================================
RECSYS_DATABASE_URL           ``sqlite:///var/recsys.db`` (PostgreSQL: ``postgresql://...``)
RECSYS_MLFLOW_TRACKING_URI    ``sqlite:///var/mlflow.db`` (artifacts under ``var/mlartifacts``)
RECSYS_VAR_DIR                ``var``
RECSYS_DEVICE                 ``auto`` (CUDA when torch sees a GPU)
RECSYS_DATAFRAME              ``auto`` (cuDF's pandas accelerator when installed with a GPU)
RECSYS_LOG_LEVEL              ``WARNING`` for the CLI, ``INFO`` for the service
RECSYS_LOG_FORMAT             ``text``; ``json``: one JSON object per log line (``recsys.logs``)
============================  ============================================================
"""

from __future__ import annotations

import os
from typing import Literal

from recsys.errors import InvalidInputError

ENV_PREFIX = "RECSYS_"
DEFAULT_DATABASE_URL = "sqlite:///var/recsys.db"
DEFAULT_TRACKING_URI = "sqlite:///var/mlflow.db"
DATAFRAME_CHOICES = ("auto", "pandas", "cudf")

try:  # the torch-only GPU check machine has no pydantic; it only ever asks dataframe_choice()
    from pydantic import Field, ValidationError
    from pydantic_settings import BaseSettings, SettingsConfigDict
except ImportError:  # pragma: no cover - exercised by tests/benchmarks/test_gpu_check.py
    BaseSettings = None


def dataframe_choice() -> str:
    """``RECSYS_DATAFRAME``, needed before pandas is imported (also without pydantic)."""
    if BaseSettings is not None:
        return get_settings().dataframe
    choice = os.environ.get(ENV_PREFIX + "DATAFRAME", "auto").strip().lower()
    if choice not in DATAFRAME_CHOICES:
        raise InvalidInputError(f"RECSYS_DATAFRAME={choice!r} is not one of {DATAFRAME_CHOICES}")
    return choice


if BaseSettings is not None:

    class CommonSettings(BaseSettings):
        """Settings every recsys process reads (prefix ``RECSYS_``)."""

        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

        database_url: str = Field(
            default=DEFAULT_DATABASE_URL,
            description="SQLAlchemy URL of the store (SQLite file or PostgreSQL).",
        )
        mlflow_tracking_uri: str = Field(
            default=DEFAULT_TRACKING_URI, description="MLflow tracking and registry URI."
        )
        var_dir: str = Field(default="var", description="Local state: caches, keys, models.")
        device: Literal["auto", "cpu", "cuda"] = "auto"
        dataframe: Literal["auto", "pandas", "cudf"] = Field(
            default="auto", description="Table backend: pandas, or cuDF's pandas accelerator."
        )
        log_level: str | None = Field(
            default=None, description="Logging level (CLI default WARNING, service INFO)."
        )
        log_format: Literal["text", "json"] = Field(
            default="text", description="Log lines as text, or one JSON object per line."
        )

    def get_settings() -> CommonSettings:
        """The process's shared settings, read from the environment now (cheap; tests and
        notebooks may change the environment between calls).

        Raises
        ------
        InvalidInputError
            A ``RECSYS_*`` variable holds a value that is not allowed (named in the message).
        """
        return load_settings(CommonSettings)

    def load_settings(cls: type[BaseSettings], **values) -> BaseSettings:
        """``cls(**values)`` with ``RECSYS_*`` errors as one line naming each variable."""
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidInputError(f"invalid setting(s): {problems}") from None


__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_TRACKING_URI",
    "CommonSettings",
    "dataframe_choice",
    "get_settings",
    "load_settings",
]
