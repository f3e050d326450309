"""Erasure of derived data: model bundles in the registry, local bundle caches, the SQLite log.

After :func:`recsys.store.erasure.erase_user` has committed, :meth:`DerivedDataScrubber.erase`
queues one durable scrub per target (``privacy_scrubs``, by user hash only) and runs them at
once. A target that fails (a remote artifact store that is down) stays ``pending`` with its
error and is retried with back-off by :meth:`DerivedDataScrubber.retry_due` (the service's
privacy job and ``recsys retention run``) until it succeeds. Each target is idempotent: a
bundle that no longer holds the user is left alone.

Targets
-------
``registry``
    Every registered version of the model (not only the champion): local artifact stores are
    scrubbed in place, remote ones downloaded, scrubbed and uploaded over the same paths.
``cache:<dir>``
    Every bundle directory under ``dir`` (the service's ``<var_dir>/models`` download cache).
``sqlite-log``
    SQLite keeps old page images in its write-ahead log until a checkpoint; a TRUNCATE
    checkpoint empties it (busy readers make it pending, to be retried).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsys.privacy.bundle_scrub import find_bundles, scrub_bundle
from recsys.store import Store, read_session, write_session
from recsys.store.privacy import (
    due_scrubs,
    enqueue_scrubs,
    fail_scrub,
    finish_scrub,
    scrubs_of,
)
from recsys.store.tables import utcnow

logger = logging.getLogger(__name__)

REGISTRY, CACHE, SQLITE_LOG = "registry", "cache:", "sqlite-log"


class ScrubFailed(RuntimeError):
    """A target could not be scrubbed now (it stays pending)."""


class DerivedDataScrubber:
    """Scrub erased users out of derived data, durably.

    Parameters
    ----------
    store : Store
        Where erasures and the scrub queue live.
    tracking_uri : str, optional
        The MLflow registry whose versions are scrubbed; None: no registry target.
    cache_dirs : list of path
        Directories of downloaded bundles (``<var_dir>/models``).
    registry_factory : callable, optional
        ``f(tracking_uri) -> recsys.registry.Registry`` (default: the real one).
    """

    def __init__(
        self,
        store: Store,
        *,
        tracking_uri: str | None = None,
        cache_dirs: list[str | Path] = (),
        registry_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.store = store
        self.tracking_uri = tracking_uri
        self.cache_dirs = [Path(d) for d in cache_dirs]
        self._registry_factory = registry_factory

    def targets(self) -> list[str]:
        """The targets every erasure queues."""
        out = [REGISTRY] if self.tracking_uri else []
        out += [CACHE + str(d.resolve()) for d in self.cache_dirs]
        if self.store.engine.dialect.name == "sqlite":
            out.append(SQLITE_LOG)
        return out

    def erase(self, receipt: dict[str, Any]) -> list[dict[str, Any]]:
        """Queue and run the scrubs of one erasure receipt; returns their states (``done`` with
        the artifacts touched, or ``pending`` with the error)."""
        receipt_id, hashed = receipt["receipt_id"], receipt["user_hash"]
        with write_session(self.store.engine) as session:
            enqueue_scrubs(session, receipt_id, hashed, self.targets())
        self.retry_due(receipt_id=receipt_id)
        return self.states([receipt_id])[receipt_id]

    def states(self, receipt_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The scrubs of each receipt."""
        with read_session(self.store.engine) as session:
            return scrubs_of(session, receipt_ids)

    def retry_due(self, *, receipt_id: str | None = None) -> dict[str, int]:
        """Run every due pending scrub (only ``receipt_id``'s when given); returns how many
        finished and how many are still pending."""
        with read_session(self.store.engine) as session:
            due = [
                (r.id, r.target, r.user_hash, r.attempts)
                for r in due_scrubs(session, utcnow(), limit=1000)
                if receipt_id is None or r.receipt_id == receipt_id
            ]
        done = failed = 0
        for scrub_id, target, hashed, attempts in due:
            try:
                artifacts = self._run(target, {hashed})
            except Exception as exc:  # any failure of a target leaves it pending, to retry
                logger.warning("scrub of %s failed (attempt %d): %s", target, attempts + 1, exc)
                with write_session(self.store.engine) as session:
                    fail_scrub(session, scrub_id, attempts, f"{type(exc).__name__}: {exc}")
                failed += 1
                continue
            with write_session(self.store.engine) as session:
                finish_scrub(session, scrub_id, artifacts)
            done += 1
        return {"done": done, "pending": failed}

    # ------------------------------------------------------------------ targets
    def _run(self, target: str, hashes: set[str]) -> list[dict[str, Any]]:
        if target == REGISTRY:
            return self._scrub_registry(hashes)
        if target.startswith(CACHE):
            root = Path(target[len(CACHE) :])
            touched = [scrub_bundle(p, hashes) for p in find_bundles(root)]
            return [dict(t, artifact=f"cache:{t['path']}") for t in touched if t]
        if target == SQLITE_LOG:
            return self._checkpoint()
        raise ScrubFailed(f"unknown scrub target {target!r}")

    def _registry(self):
        if self._registry_factory is not None:
            return self._registry_factory(self.tracking_uri)
        from recsys.registry import Registry

        return Registry(self.tracking_uri)

    def _scrub_registry(self, hashes: set[str]) -> list[dict[str, Any]]:
        registry = self._registry()
        out = []
        for version, uri in registry.bundle_locations():
            local = registry.local_path(uri)
            if local is not None:
                found = find_bundles(local)
                if not found:
                    raise ScrubFailed(f"version {version}: {uri} holds no bundle")
                touched = [scrub_bundle(path, hashes) for path in found]
            else:
                touched = self._scrub_remote(registry, uri, hashes)
            name = f"models:/{registry.model_name}/{version}"
            row = {"artifact": name, "location": uri, "rows_removed": 0, "files": []}
            for t in filter(None, touched):
                row["rows_removed"] += t["rows_removed"]
                row["files"] += t["files"]
            out.append(row)
        return out

    @staticmethod
    def _scrub_remote(registry, uri: str, hashes: set[str]) -> list[dict | None]:
        workdir = Path(tempfile.mkdtemp(prefix="recsys-scrub-"))
        try:
            local = registry.fetch_artifacts(uri, workdir)
            found = find_bundles(local)
            if not found:
                raise ScrubFailed(f"{uri} holds no bundle")
            touched = []
            for path in found:
                done = scrub_bundle(path, hashes)
                if done:
                    files = [str((path / f).relative_to(local)) for f in done["files"]]
                    registry.replace_artifacts(uri, local, files)
                    done["files"] = files
                touched.append(done)
            return touched
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # it held the user's rows

    def _checkpoint(self) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            busy, *_ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise ScrubFailed("the SQLite log is in use by a reader; checkpoint again later")
        return [{"artifact": "sqlite write-ahead log", "location": str(self.store.url)}]
