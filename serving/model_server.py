"""The model side of the service as a plain class: load a bundle, answer, hot-swap, forget users.

Ray Serve wraps it in a deployment (serving.deployments); tests and notebooks use it directly.
Every model operation goes through one entry, :meth:`ModelServer.answer`, which takes typed
requests (``recsys.recommend``: RecommendRequest, SimilarRequest, CrossSellRequest,
CategoriesRequest) and returns, per request, a JSON-ready dict or a
:class:`~serving.failure.Failure` (the error kind and message of a request the model refused);
the model client raises it again as its kind and the HTTP layer alone picks the status code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from recsys.bundle import BundleError, load_bundle
from recsys.errors import RecsysError, UnavailableError
from recsys.recommend import Answer, RecommendationEngine, Request
from serving.failure import Failure
from serving.settings import Settings

logger = logging.getLogger(__name__)


class ModelUnavailableError(UnavailableError):
    """No model could be loaded from the configured URI."""


class ModelServer:
    """Holds the serving engine and swaps it atomically on reload.

    Parameters
    ----------
    settings : Settings
        ``model_uri`` (``models:/recsys@champion`` or a bundle directory), tracking URI, device,
        index kind, suppression window.
    erased_hashes : callable, optional
        Returns the hashes of erased users; they are forgotten by every freshly loaded engine.
    """

    def __init__(self, settings: Settings, erased_hashes=None) -> None:
        self.settings = settings
        self._erased_hashes = erased_hashes
        self._engine: RecommendationEngine | None = None
        self._info: dict = {}
        self._reload_lock = threading.Lock()
        self.reload()

    # ------------------------------------------------------------------ loading
    def _fetch(self) -> tuple[Path, str]:
        uri = self.settings.model_uri
        if Path(uri).is_dir():
            return Path(uri), f"local:{Path(uri).name}"
        if not uri.startswith("models:/"):
            raise ModelUnavailableError(
                f"RECSYS_MODEL_URI={uri!r} is neither a bundle directory nor a models:/ URI"
            )
        from recsys.registry import Registry

        registry = Registry(self.settings.mlflow_tracking_uri)
        try:
            meta = registry.resolve(uri)
        except Exception as exc:  # MLflow raises several types for "no such alias/model"
            raise ModelUnavailableError(
                f"no model behind {uri} in {self.settings.mlflow_tracking_uri} ({exc}); "
                "train one first: recsys train --config configs/train.yaml"
            ) from None
        # Download by version, not alias: the alias may move while we download.
        versioned = f"models:/{meta['name']}/{meta['version']}"
        target = Path(self.settings.var_dir) / "models" / f"{meta['name']}-v{meta['version']}"
        return registry.download_bundle(versioned, dst=target), meta["version"]

    def _load(self) -> tuple[RecommendationEngine, dict]:
        path, version = self._fetch()
        try:
            bundle = load_bundle(path, mmap=False)
        except BundleError as exc:
            raise ModelUnavailableError(str(exc)) from None
        engine = RecommendationEngine(
            bundle,
            model_version=version,
            index_kind=self.settings.index,
            device=self.settings.device,
            suppress_seconds=self.settings.suppress_seconds,
        )
        if self._erased_hashes is not None:
            from recsys.store import user_hash

            forgotten = engine.forget_hashed(self._erased_hashes(), user_hash)
            if forgotten:
                logger.info("model %s: forgot %d erased user(s)", version, forgotten)
        info = {
            "version": version,
            "model_uri": self.settings.model_uri,
            "kind": bundle.kind,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "n_items": bundle.n_items,
            "n_users": bundle.n_users,
            "index": engine.index.describe(),
            "metrics": bundle.metrics,
            "example_user_id": engine.example_user(),
            "example_item_id": str(engine.item_ids[engine.popular_order[0]]),
        }
        return engine, info

    def reload(self) -> dict:
        """Load the model the URI points at now and swap to it; in-flight requests finish on the
        engine they started with (the swap is one reference assignment)."""
        with self._reload_lock:
            previous = self._info.get("version")
            engine, info = self._load()
            self._engine, self._info = engine, info
        logger.info("serving model %s (previous %s)", info["version"], previous)
        return {
            "previous_version": previous,
            "version": info["version"],
            "changed": previous != info["version"],
        }

    def info(self) -> dict:
        return dict(self._info)

    @property
    def engine(self) -> RecommendationEngine:
        if self._engine is None:
            raise ModelUnavailableError("no model loaded")
        return self._engine

    # ------------------------------------------------------------------ answers
    def answer(self, requests: Sequence[Request]) -> list[dict | Failure]:
        """Answer any mix of requests (the personalised ones in one batched search).

        Returns, per request in order, a JSON-ready dict or the :class:`Failure` it raised;
        one request's bad ``k``, unknown id or unknown category never fails the others.
        """
        return [
            Failure.of(answer) if isinstance(answer, RecsysError) else self._dump(answer)
            for answer in self.engine.answer_many(requests)
        ]

    def forget_user(self, user_id: str) -> int:
        return self.engine.forget_user(user_id)

    @staticmethod
    def _dump(answer: Answer | dict) -> dict:
        if not isinstance(answer, Answer):
            return answer  # already JSON-ready (the categories listing)
        return {
            "items": answer.items,
            "strategy": answer.strategy,
            "model_version": answer.model_version,
            **{key: value for key, value in answer.meta.items() if key == "unknown_items"},
        }
