"""Ray Serve deployments: thin wrappers over ModelServer and the FastAPI app.

- ``ModelDeployment`` holds the engine (model + FAISS/torch index) and answers every model
  operation through one method, ``answer``, batching requests dynamically (one ANN search per
  batch of personalised requests); it takes a GPU when the machine has one. Each replica follows
  the store's catalogue before every batch and polls the registry for a new champion by itself
  (``serving.model_server``).
- ``ApiIngress`` is the FastAPI ingress: auth, validation, the store, metrics. In the ``split``
  mode it reaches the model deployment through a handle; in the ``colocated`` mode it holds the
  engine itself (no handle hop: the default on a CPU machine, see ``serving_mode``).
- ``CampaignWorkerDeployment`` runs the campaign worker loop (``serving.worker``) in one replica;
  it asks the model deployment through its handle in the ``split`` mode, else loads the engine.

On a cluster, replicas prefer nodes with the labels of ``model_node_labels`` /
``ingress_node_labels`` (and move elsewhere when those nodes are gone), and the model deployment
autoscales between ``model_min_replicas`` and ``model_max_replicas`` when the latter is set.

``build_app(settings)`` is the typed application builder used by ``recsys serve`` and by
``configs/serve.yaml`` (``import_path: serving.deployments:build_app``).
"""

import functools
import logging

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from ray.serve.schema import LoggingConfig

from recsys.device import cuda_available
from recsys.logs import configure_logging
from serving.settings import Settings, resolved

logger = logging.getLogger(__name__)

QUIET_LOGS = LoggingConfig(enable_access_log=False, log_level="WARNING")


def serve_logging(settings: Settings) -> LoggingConfig:
    """Ray Serve's own log lines (its ``ray.serve`` logger) in the format of the settings."""
    encoding = "JSON" if settings.log_format == "json" else "TEXT"
    return QUIET_LOGS.model_copy(update={"encoding": encoding})


def replica_logging(settings: Settings) -> None:
    """JSON lines from the replica's own loggers too (Ray Serve formats only ``ray.serve``);
    the text format keeps Ray's defaults."""
    if settings.log_format == "json":
        configure_logging(settings.log_level or "WARNING", "json")


@serve.deployment(name="model", max_ongoing_requests=64, logging_config=QUIET_LOGS)
class ModelDeployment:
    """The engine in a replica; requests are batched and answered by ``ModelServer.answer``."""

    def __init__(self, settings: dict) -> None:
        from recsys.store import read_erased_hashes
        from serving.model_server import ModelServer

        self.settings = Settings(**settings)
        replica_logging(self.settings)
        erased = functools.partial(read_erased_hashes, self.settings.database_url)
        self.server = ModelServer(self.settings, erased)
        self._batch.set_max_batch_size(self.settings.batch_max_size)
        self._batch.set_batch_wait_timeout_s(self.settings.batch_wait_timeout_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _batch(self, requests: list) -> list:
        return self.server.answer(requests)

    async def answer(self, request):
        """Every model operation (a ``recsys.recommend`` request): batched with the requests
        that arrive alongside it; returns a JSON-ready dict or a ``Failure``."""
        return await self._batch(request)

    def info(self) -> dict:
        return self.server.info()

    def reload(self) -> dict:
        return self.server.reload()

    def forget_user(self, user_id: str) -> int:
        return self.server.forget_user(user_id)


@serve.deployment(name="api", max_ongoing_requests=128, logging_config=QUIET_LOGS)
@serve.ingress()
class ApiIngress:
    """FastAPI ingress built at replica start (a fresh app per replica)."""

    def __init__(
        self, model: DeploymentHandle | None, settings: dict, worker: DeploymentHandle | None = None
    ) -> None:
        from recsys.store import Store
        from serving.app import create_app

        self.worker = worker  # the campaign worker runs by itself; bound here so it deploys
        self.settings = Settings(**settings)
        replica_logging(self.settings)
        self.store = Store.open(self.settings.database_url)
        if self.settings.admin_key:  # e.g. `serve run configs/serve.yaml` with RECSYS_ADMIN_KEY
            self.store.keys.ensure_admin(self.settings.admin_key.get_secret_value())
        if model is None:  # colocated: the engine lives here, as in one plain process
            from serving.model_client import LocalModelClient
            from serving.model_server import ModelServer

            client = LocalModelClient(ModelServer(self.settings, self.store.erased_hashes))
        else:
            from serving.model_client import RayModelClient

            client = RayModelClient(model)
        self._fastapi = create_app(self.settings, self.store, client)

    def __serve_build_asgi_app__(self):
        return self._fastapi


@serve.deployment(name="campaign_worker", num_replicas=1, logging_config=QUIET_LOGS)
class CampaignWorkerDeployment:
    """The campaign worker loop (``serving.worker``): triggers, due steps, delivery."""

    def __init__(self, settings: dict, model: DeploymentHandle | None = None) -> None:
        from serving.worker import CampaignWorkerService

        replica_logging(Settings(**settings))
        self.service = CampaignWorkerService(settings, model)

    def status(self) -> dict:
        return self.service.status()


def serving_mode(settings: Settings) -> str:
    """``colocated`` or ``split``: ``auto`` splits the engine into its own deployment only when
    it takes a GPU (its replicas scale apart from the ingress); on a CPU machine the handle hop
    would cost more than the engine's work."""
    if settings.serving_mode != "auto":
        return settings.serving_mode
    return "split" if cuda_available() and settings.device != "cpu" else "colocated"


def preferring(labels: dict[str, str]) -> dict:
    """Actor options that place a replica on a node with ``labels`` while one has room, else
    on any node (Ray's label selector with a fallback): a replica lost with its node comes
    back elsewhere instead of waiting for a node that may not return."""
    if not labels:
        return {}
    return {"label_selector": dict(labels), "fallback_strategy": [{"label_selector": {}}]}


def model_replicas(settings: Settings) -> dict:
    """The model deployment's replica options: a fixed count, or autoscaling when
    ``model_max_replicas`` is set."""
    if settings.model_max_replicas is None:
        return {"num_replicas": settings.model_replicas}
    scaling = {
        "min_replicas": settings.model_min_replicas,
        "max_replicas": settings.model_max_replicas,
        "target_ongoing_requests": settings.model_target_ongoing_requests,
        "upscale_delay_s": settings.model_upscale_delay_s,
        "downscale_delay_s": settings.model_downscale_delay_s,
        "look_back_period_s": settings.model_look_back_s,
    }
    if settings.model_look_back_s <= 10.0:
        # Replicas and handles report every metrics_interval_s (10 s unless set; deprecated
        # but what Serve still reads), which must be shorter than the look-back window.
        scaling["metrics_interval_s"] = settings.model_look_back_s / 2
    return {"num_replicas": "auto", "autoscaling_config": scaling}


def build_app(args: Settings) -> Application:
    """Assemble the application; the engine takes a GPU when torch sees one.

    ``args`` are validated by Ray from a config file's ``args`` (RECSYS_* variables fill the
    fields not given there) or passed as Settings by ``recsys serve``.
    """
    settings = resolved(Settings(**args.model_dump(exclude_unset=True)))
    values = settings.model_dump(mode="json", exclude={"admin_key"})  # keys never travel
    gpu = cuda_available() and settings.device != "cpu"
    logs = serve_logging(settings)
    near_ingress = preferring(settings.ingress_node_labels)
    worker_options = {
        "ray_actor_options": {"num_cpus": min(settings.replica_num_cpus, 0.25)} | near_ingress,
        "logging_config": logs,
    }
    if serving_mode(settings) == "colocated":
        worker = CampaignWorkerDeployment.options(**worker_options).bind(values, None)
        return ApiIngress.options(
            num_replicas=settings.ingress_replicas,
            ray_actor_options={
                "num_cpus": settings.replica_num_cpus,
                "num_gpus": 1 if gpu else 0,
            }
            | near_ingress,
            logging_config=logs,
        ).bind(None, values, worker)
    model = ModelDeployment.options(
        **model_replicas(settings),
        ray_actor_options={
            "num_cpus": settings.replica_num_cpus,
            "num_gpus": 1 if gpu else 0,
        }
        | preferring(settings.model_node_labels),
        logging_config=logs,
    ).bind(values)
    return ApiIngress.options(
        num_replicas=settings.ingress_replicas,
        ray_actor_options={"num_cpus": settings.replica_num_cpus} | near_ingress,
        logging_config=logs,
    ).bind(model, values, CampaignWorkerDeployment.options(**worker_options).bind(values, model))
