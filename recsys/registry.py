"""The one module that talks to MLflow: tracking runs, the model registry and bundle download.

Registered model ``recsys``; aliases ``champion`` (what serving loads) and ``challenger`` (the
newest candidate). A version is a pyfunc whose artifact ``bundle`` is a serving bundle directory
(recsys.bundle), so ``mlflow.pyfunc.load_model("models:/recsys@champion")`` works in a notebook and
serving downloads the bundle directory itself.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import pandas as pd  # noqa: E402  (annotations MLflow inspects at logging time)
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from recsys.errors import UnavailableError
from recsys.settings import get_settings  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_ARTIFACT_ROOT = "var/mlartifacts"
MODEL_NAME = "recsys"
EXPERIMENT = "recsys"
CHAMPION = "champion"
CHALLENGER = "challenger"
BUNDLE_ARTIFACT = "bundle"


class RegistryUnavailableError(UnavailableError):
    """The MLflow tracking/registry URI cannot be reached or used."""


def _check_reachable(uri: str) -> None:
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db_path = uri.split("sqlite:///", 1)[-1]
        if db_path and db_path != ":memory:":
            folder = Path(db_path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RegistryUnavailableError(
                    f"MLflow store {uri}: cannot create {folder}: {exc}"
                ) from None
            if not os.access(folder, os.W_OK):
                raise RegistryUnavailableError(f"MLflow store {uri}: {folder} is not writable")
        return
    if parsed.scheme in ("http", "https"):
        import httpx

        try:
            response = httpx.get(uri.rstrip("/") + "/health", timeout=5.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"MLflow tracking server {uri} is unreachable ({exc.__class__.__name__}: {exc}); "
                "start it or point RECSYS_MLFLOW_TRACKING_URI elsewhere"
            ) from None
        return
    if parsed.scheme in ("", "file"):
        return
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # any backend-specific failure means "unusable"
        raise RegistryUnavailableError(f"MLflow URI {uri} is unusable: {exc}") from None


def _default_artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside the database file (``var/mlartifacts`` for
    the default ``sqlite:///var/mlflow.db``); a server decides for itself."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db_path = uri.split("sqlite:///", 1)[-1]
        if db_path and db_path != ":memory:":
            return str(Path(db_path).parent / "mlartifacts")
        return DEFAULT_ARTIFACT_ROOT
    return None  # a file store keeps artifacts in its own tree; a server decides for itself


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc face of a bundle: ``predict`` takes rows of ``user_id`` (and optionally ``k``,
    default 10) and returns their top items as (user_id, rank, item_id, score) rows."""

    def load_context(self, context) -> None:
        from recsys.bundle import load_bundle
        from recsys.recommend import RecommendationEngine

        self.engine = RecommendationEngine(load_bundle(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        default_k = int((params or {}).get("k", 10))
        ks = model_input["k"] if "k" in model_input else [default_k] * len(model_input)
        rows = []
        for user_id, k in zip(model_input["user_id"].astype(str), ks, strict=True):
            answer = self.engine.recommend(user_id, k=int(k))
            for rank, item in enumerate(answer.items, start=1):
                rows.append((user_id, rank, item["item_id"], item["score"]))
        return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])


class Registry:
    """MLflow tracking + registry for one experiment and one registered model.

    Parameters
    ----------
    tracking_uri : str, optional
        Any MLflow URI; default ``RECSYS_MLFLOW_TRACKING_URI``, else ``sqlite:///var/mlflow.db``
        (artifacts beside the database file: ``var/mlartifacts``).
    check : bool
        Verify the URI is reachable now (so a training job fails before it trains).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = EXPERIMENT,
        model_name: str = MODEL_NAME,
        artifact_root: str | None = None,
        check: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri or get_settings().mlflow_tracking_uri
        self.experiment = experiment
        self.model_name = model_name
        if check:
            _check_reachable(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        root = artifact_root or _default_artifact_root(self.tracking_uri)
        self.artifact_root = Path(root).resolve().as_uri() if root else None

    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(self.experiment, artifact_location=self.artifact_root)

    @contextmanager
    def run(self, run_name: str | None = None, tags: dict | None = None):
        """An MLflow run in the experiment; marked FAILED if the block raises."""
        with mlflow.start_run(
            experiment_id=self.experiment_id(), run_name=run_name, tags=tags
        ) as active:
            yield active

    @staticmethod
    def log_params(params: dict) -> None:
        """Log flat parameters to the active run (values longer than MLflow allows are cut)."""
        mlflow.log_params({key: str(value)[:6000] for key, value in params.items()})

    @staticmethod
    def log_metrics(metrics: dict) -> None:
        """Log numeric metrics to the active run (``@`` is not allowed in names: ``ndcg_at_20``)."""
        clean = {
            key.replace("@", "_at_"): float(value)
            for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        mlflow.log_metrics(clean)

    @staticmethod
    def log_dict(data: dict, name: str) -> None:
        mlflow.log_dict(data, name)

    def delete_version(self, version: str | int) -> None:
        """Remove a registered version (used when a run fails after registering)."""
        self.client.delete_model_version(self.model_name, str(version))

    def log_bundle(self, bundle_dir: str | Path, register: bool = True):
        """Log a bundle directory as a pyfunc model in the active run; optionally register it.

        Returns the ModelInfo (``registered_model_version`` is set when registered).
        """
        bundle_dir = Path(bundle_dir)
        quiet = logging.getLogger("mlflow.pyfunc")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the cloudpickle notice: our class is imported by name
        try:
            return mlflow.pyfunc.log_model(
                name=BUNDLE_ARTIFACT,
                python_model=BundlePyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                pip_requirements=["torch", "numpy", "pandas", "pyarrow", "faiss-cpu"],
                registered_model_name=self.model_name if register else None,
            )
        finally:
            quiet.setLevel(level)

    def alias_version(self, alias: str):
        """The ModelVersion behind ``alias``, or None when the alias is not set."""
        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None

    def set_alias(self, alias: str, version: str | int) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def tag_version(self, version: str | int, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, str(value))

    def versions(self) -> list[dict]:
        """Every registered version with its aliases, run id and tags (newest first)."""
        try:
            found = self.client.search_model_versions(f"name='{self.model_name}'")
        except MlflowException:
            return []
        aliases: dict[str, list[str]] = {}
        try:
            for alias, version in self.client.get_registered_model(self.model_name).aliases.items():
                aliases.setdefault(str(version), []).append(alias)
        except MlflowException:
            pass
        rows = [
            {
                "version": int(v.version),
                "aliases": sorted(aliases.get(str(v.version), [])),
                "run_id": v.run_id,
                "created": v.creation_timestamp,
                "tags": dict(v.tags),
            }
            for v in found
        ]
        return sorted(rows, key=lambda row: row["version"], reverse=True)

    def run_metrics(self, run_id: str) -> tuple[dict[str, float], bool]:
        """The metrics a run logged, and whether the run has ended (its metrics are final);
        ``({}, True)`` for a run that no longer exists."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return {}, True
        return dict(run.data.metrics), run.info.status in ("FINISHED", "FAILED", "KILLED")

    def download_bundle(self, model_uri: str, dst: str | Path | None = None) -> Path:
        """Download the bundle directory of ``models:/recsys@champion`` (or any model URI)."""
        target = Path(dst) if dst else Path(tempfile.mkdtemp(prefix="recsys-bundle-"))
        if dst is not None:
            cached = [*target.glob("artifacts/*/manifest.json"), target / "manifest.json"]
            for manifest in cached:
                if manifest.exists():  # an immutable version downloaded before
                    return manifest.parent
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri, dst_path=str(target)
            )
        except MlflowException as exc:
            raise RegistryUnavailableError(f"cannot download {model_uri}: {exc.message}") from None
        for manifest in [
            *Path(local).glob("artifacts/*/manifest.json"),
            Path(local, "manifest.json"),
        ]:
            if manifest.exists():
                return manifest.parent
        raise RegistryUnavailableError(f"{model_uri} holds no recsys bundle")

    @staticmethod
    def load_pyfunc(model_uri: str):
        """The registered model as an MLflow pyfunc (``predict(DataFrame[user_id])``)."""
        return mlflow.pyfunc.load_model(model_uri)

    def bundle_locations(self) -> list[tuple[int, str]]:
        """``(version, URI of the artifact directory holding its bundle)`` of every version
        (the bundle is the one subdirectory there, named after the directory training logged).

        Raises
        ------
        RegistryUnavailableError
            The registry cannot be listed now (an empty registry is an empty list).
        """
        try:
            found = self.client.search_model_versions(f"name='{self.model_name}'")
            return sorted(
                (int(v.version),
                 self.client.get_model_version_download_uri(self.model_name, v.version)
                 .rstrip("/") + "/artifacts")
                for v in found
            )  # fmt: skip
        except Exception as exc:  # MLflow and its HTTP client raise many types for "down"
            raise RegistryUnavailableError(
                f"cannot list versions of {self.model_name}: {exc}"
            ) from None

    @staticmethod
    def local_path(artifact_uri: str) -> Path | None:
        """The directory behind a ``file://`` (or plain path) artifact URI; None when remote."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme == "file":
            return Path(parsed.path)
        if parsed.scheme == "":
            return Path(artifact_uri)
        return None

    @staticmethod
    def fetch_artifacts(artifact_uri: str, dst: str | Path) -> Path:
        """Download the artifact directory ``artifact_uri`` into ``dst``."""
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(dst)
            )
        except Exception as exc:
            raise RegistryUnavailableError(f"cannot download {artifact_uri}: {exc}") from None
        return Path(local)

    @staticmethod
    def replace_artifacts(artifact_uri: str, local_dir: str | Path, files: list[str]) -> None:
        """Upload ``files`` (paths relative to ``local_dir``) over the same paths under the
        artifact directory ``artifact_uri``."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(artifact_uri)
        try:
            for rel in files:
                parent = str(Path(rel).parent)
                repo.log_artifact(str(Path(local_dir, rel)), None if parent == "." else parent)
        except Exception as exc:
            raise RegistryUnavailableError(f"cannot upload to {artifact_uri}: {exc}") from None

    def resolve(self, model_uri: str) -> dict:
        """Version number and run id behind a ``models:/name@alias`` or ``models:/name/N`` URI."""
        spec = model_uri.removeprefix("models:/")
        name, _, ref = spec.partition("@")
        if ref:
            version = self.client.get_model_version_by_alias(name, ref)
        else:
            name, _, number = spec.partition("/")
            version = self.client.get_model_version(name, number)
        return {"name": name, "version": str(version.version), "run_id": version.run_id}
