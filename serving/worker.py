"""The campaign worker process: the library's ``CampaignWorker`` over the store and the served
model (thin: the logic is in :mod:`recsys.campaigns`).

``recsys worker`` runs it on its own (the model loaded in-process, like a model replica);
:class:`CampaignWorkerService` is the same loop as a Ray Serve deployment of the application
(it asks the model deployment through its handle when there is one). A send step naming a model
(``recommendations.model``: a registry alias such as ``challenger``, or a version number) gets
that version of the served registered model, loaded in the worker on first use; a version that
cannot be loaded fails those sends (recorded), it is never replaced. The shipped campaigns in
``configs/campaigns/`` are installed first (once; they are then managed over the API).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from recsys.campaigns.models import VERSION, Recommenders, model_uri, same_as_served
from recsys.campaigns.recommend import Recommender
from recsys.campaigns.service import CampaignService
from recsys.campaigns.worker import CampaignWorker
from recsys.recommend import Request
from recsys.segments.service import SegmentService
from recsys.store import Store
from serving.failure import Failure
from serving.model_server import ModelServer
from serving.settings import Settings

logger = logging.getLogger(__name__)
SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "campaigns"


def model_recommender(answer: Callable[[Sequence[Request]], list]) -> Recommender:
    """A recommender over ``ModelServer.answer`` (JSON-ready answers or ``Failure``)."""

    def recommend(requests: Sequence[Request]) -> list[list[dict] | None]:
        return [None if isinstance(a, Failure) else a["items"] for a in answer(list(requests))]

    return recommend


def install_shipped(store: Store, folder: Path = SHIPPED) -> list[str]:
    """Install the campaign files of ``folder`` that are not in the store yet (and the built-in
    RFM segments the win-back campaign listens to); their ids."""
    SegmentService(store).install_rfm_groups(evaluate=False)  # the refresh job fills them
    service = CampaignService(store)
    return [service.load_file(path)["id"] for path in sorted(folder.glob("*.yaml"))]


def registry_loader(service: Settings, erased_hashes=None, device: str | None = None
                    ) -> Callable[[str], Recommender]:  # fmt: skip
    """``reference -> Recommender`` for the A/B arms: the alias or version of the served
    registered model, loaded by the service's own loader (:class:`ModelServer`; an alias is
    polled like the served one, a version never moves)."""

    def load(reference: str) -> Recommender:
        uri = model_uri(reference, service.model_uri)
        update = {"model_uri": uri}
        if VERSION.match(reference):
            update["model_poll_seconds"] = 0.0
        if device is not None:
            update["device"] = device
        server = ModelServer(service.model_copy(update=update), erased_hashes)
        recommend = model_recommender(server.answer)
        recommend.close = server.close  # stops the alias poll when no campaign names it any more
        return recommend

    return load


def recommenders(service: Settings, default: Recommender, erased_hashes=None,
                 device: str | None = None) -> Recommenders:  # fmt: skip
    """The worker's recommenders: ``default`` (the served model) for steps naming no model or
    the served alias; the others loaded from the registry when an active campaign names them."""
    return Recommenders(
        default,
        load=registry_loader(service, erased_hashes, device),
        served=lambda reference: same_as_served(reference, service.model_uri),
    )


def build_worker(service: Settings, store: Store, **kwargs) -> CampaignWorker:
    """A worker over ``store`` with the configured model as its recommender and the registry's
    other versions for the campaigns that name them (``kwargs`` go to :class:`CampaignWorker`:
    clock, channels, settings ...)."""
    server = ModelServer(service, store.erased_hashes)
    default = model_recommender(server.answer)
    return CampaignWorker(store, recommenders(service, default, store.erased_hashes), **kwargs)


def run(settings: Settings, once: bool = False, poll_s: float = 1.0) -> dict | None:
    """Run the worker until SIGTERM/SIGINT (or one catch-up pass with ``once``)."""
    store = Store.open(settings.database_url)
    try:
        installed = install_shipped(store)
        logger.info("campaigns installed: %s", installed)
        worker = build_worker(settings, store)
        if once:
            return worker.run_once()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        worker.run_forever(stop, poll_s)
        return None
    finally:
        store.close()


def handle_recommender(handle) -> Recommender:
    """A recommender over the model deployment's handle (``answer`` takes one request; the
    requests of a batch are sent together so the deployment batches them)."""

    def answer(requests: Sequence[Request]) -> list:
        pending = [handle.answer.remote(request) for request in requests]
        return [response.result() for response in pending]

    return model_recommender(answer)


class CampaignWorkerService:
    """The worker loop in a background thread of a Ray Serve replica (``serving.deployments``
    binds it into the application, so ``recsys serve`` / ``make run`` runs the campaigns).

    Parameters
    ----------
    settings : dict
        ``Settings`` values (as the other deployments get them).
    model : DeploymentHandle, optional
        The model deployment; without one the engine is loaded here.
    """

    def __init__(self, settings: dict, model=None, poll_s: float = 1.0) -> None:
        service = Settings(**settings)
        self.store = Store.open(service.database_url)
        install_shipped(self.store)
        if model is None:
            self.worker = build_worker(service, self.store)
        else:  # the model deployment serves the default; other versions load here, on CPU
            named = recommenders(service, handle_recommender(model), self.store.erased_hashes,
                                 device="cpu")  # fmt: skip
            self.worker = CampaignWorker(self.store, named)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.worker.run_forever, args=(self.stop, poll_s), daemon=True,
            name="campaign-worker",
        )  # fmt: skip
        self.thread.start()

    def status(self) -> dict:
        """Whether the loop runs, and the active campaigns."""
        return {"running": self.thread.is_alive(), "campaigns": sorted(self.worker.campaigns())}

    def __del__(self) -> None:
        self.stop.set()
