"""The model side of the service as a plain class: load a bundle, answer, hot-swap, forget users.

Ray Serve wraps it in a deployment (serving.deployments); tests and notebooks use it directly.
Every model operation goes through one entry, :meth:`ModelServer.answer`, which takes typed
requests (``recsys.recommend``: RecommendRequest, SimilarRequest, CrossSellRequest,
CategoriesRequest) and returns, per request, a JSON-ready dict or a
:class:`~serving.failure.Failure` (the error kind and message of a request the model refused);
the model client raises it again as its kind and the HTTP layer alone picks the status code.

Two things stay live without an admin call:

- **The catalogue.** Before answering a batch, the server asks the store's catalogue feed
  (``recsys.store.catalogue_feed``) for its newest change number, one index read; when it moved
  past the number this engine has applied, the changed items are read and applied
  (``RecommendationEngine.apply_catalogue``). A change committed before a request arrives is
  therefore in its answer, on every replica (``catalogue_check_seconds`` > 0 trades that for
  fewer reads: answers may then be that many seconds stale). A freshly loaded engine applies
  the whole stored catalogue before it serves.
- **The model.** With ``model_poll_seconds`` > 0 and a ``models:/`` URI, a background thread
  looks the alias up every interval and, when it points at another version, loads it and swaps
  (in-flight requests finish on the old engine); a failed load keeps the old model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

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
    catalogue : CatalogueFeed or None, optional
        The store's catalogue changes; by default the feed of ``settings.database_url``
        (``None``: the catalogue stays as the bundle has it).
    """

    def __init__(self, settings: Settings, erased_hashes=None, catalogue="store") -> None:
        self.settings = settings
        self._erased_hashes = erased_hashes
        self._feed = _store_feed(settings.database_url) if catalogue == "store" else catalogue
        self._engine: RecommendationEngine | None = None
        self._seq: int | None = None  # the feed's change number the serving engine applied
        self._checked = 0.0
        self._info: dict = {}
        self._reload_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self.reload()
        self._poller: threading.Thread | None = None
        if settings.model_poll_seconds > 0 and settings.model_uri.startswith("models:/"):
            self._poller = threading.Thread(target=self._poll, name="model-poll", daemon=True)
            self._poller.start()

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

    def _load(self) -> tuple[RecommendationEngine, dict, int | None]:
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
        seq = None  # None: the whole stored catalogue is still to be applied
        if self._feed is not None:  # ... before it serves, when the store can be read
            try:
                changes = self._feed.changes(None)
            except SQLAlchemyError as exc:
                logger.warning("catalogue not read at load (store unavailable): %s", exc)
            else:
                engine.apply_catalogue(changes.rows)
                seq = changes.seq
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
        return engine, info, seq

    def reload(self) -> dict:
        """Load the model the URI points at now and swap to it; in-flight requests finish on the
        engine they started with (the swap is one reference assignment)."""
        with self._reload_lock:
            previous = self._info.get("version")
            engine, info, seq = self._load()
            with self._sync_lock:  # changes after seq reach the new engine at the next answer
                self._engine, self._info, self._seq = engine, info, seq
        logger.info("serving model %s (previous %s)", info["version"], previous)
        return {
            "previous_version": previous,
            "version": info["version"],
            "changed": previous != info["version"],
        }

    def info(self) -> dict:
        engine = self._engine
        live = {"catalogue_seq": self._seq}
        if engine is not None:
            live["new_items"] = len(engine.new_items)
        return dict(self._info) | live

    def sync_catalogue(self) -> dict | None:
        """Apply the store's catalogue changes since the last applied one; None when there were
        none (or the check was skipped: ``catalogue_check_seconds`` not yet elapsed). A store
        that cannot be read is logged and the catalogue stays as it is."""
        if self._feed is None:
            return None
        interval = self.settings.catalogue_check_seconds
        if interval and time.monotonic() - self._checked < interval:
            return None
        with self._sync_lock:
            try:
                self._checked = time.monotonic()
                if self._seq is not None and self._feed.last_seq() <= self._seq:
                    return None
                changes = self._feed.changes(self._seq)
            except SQLAlchemyError as exc:  # keep answering from the catalogue we have
                logger.warning("catalogue changes not read (store unavailable): %s", exc)
                return None
            applied = self.engine.apply_catalogue(changes.rows)
            self._seq = changes.seq
        return applied

    def _poll(self) -> None:
        """Swap to the model the URI's alias points at whenever it moves (background thread)."""
        from recsys.registry import Registry

        registry = Registry(self.settings.mlflow_tracking_uri)
        while not self._stop.wait(self.settings.model_poll_seconds):
            try:
                if registry.resolve(self.settings.model_uri)["version"] != self._info["version"]:
                    self.reload()
            except Exception as exc:  # MLflow and downloads fail in many types; keep serving
                logger.warning("model poll: keeping model %s (%s)", self._info["version"], exc)

    def close(self) -> None:
        """Stop the model poll (the engine keeps answering)."""
        self._stop.set()

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
        self.sync_catalogue()
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


def _store_feed(url: str):
    """The catalogue feed of the store at ``url`` (schema migrated)."""
    from recsys.store import Store
    from recsys.store.catalogue_feed import CatalogueFeed

    return CatalogueFeed(Store.open(url).engine)
