"""The self-contained serving bundle: what training registers and serving loads.

A bundle is a directory of plain files that needs neither the training code nor pickled classes::

    manifest.json       format version, model kind and config, metrics, sizes, creation time
    arrays/NAME.npy     one numpy array per model component (memory-mapped on load)
    item_ids.npy        index -> external item id (str)
    user_ids.npy        index -> external user id (str)
    items.parquet       item metadata in index order (title, category, price, in_stock, ...)

It is written to a temporary sibling directory and renamed into place, so a crash never leaves a
half-written bundle behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.data.frame import pd
from recsys.errors import InvalidInputError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class BundleError(InvalidInputError):
    """A bundle directory is missing, incomplete or of an unknown format."""


@dataclass
class ServingBundle:
    """Everything the online engine needs, in plain numpy/pandas form."""

    kind: str
    config: dict
    arrays: dict[str, np.ndarray]
    item_ids: np.ndarray
    user_ids: np.ndarray
    items: pd.DataFrame
    metrics: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def bundle_of(model, items: pd.DataFrame | None = None, **extra) -> ServingBundle:
    """An in-memory bundle of a fitted model that exports ``to_arrays()`` (the default model):
    its arrays and config, the id maps, and the item table aligned with the item index.
    ``extra`` sets further fields (``metrics``, ``manifest``)."""
    arrays, config = model.to_arrays()
    item_ids, user_ids = arrays.pop("item_ids"), arrays.pop("user_ids")
    table = pd.DataFrame({"item_id": np.asarray(item_ids).astype(str)})
    if items is not None and len(items) and "item_id" in items:
        meta = items.drop_duplicates("item_id")
        meta = meta.assign(item_id=meta["item_id"].astype(str))
        table = table.merge(meta, on="item_id", how="left")
    return ServingBundle(
        kind=model.name,
        config=config,
        arrays=arrays,
        item_ids=np.asarray(item_ids, dtype=object),
        user_ids=np.asarray(user_ids, dtype=object),
        items=table,
        **extra,
    )


def save_bundle(bundle: ServingBundle, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``bundle`` to directory ``path`` atomically and return the path."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise BundleError(f"{path} exists and is not empty; refusing to overwrite a bundle")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / "arrays").mkdir()
        for name, array in bundle.arrays.items():
            np.save(staging / "arrays" / f"{name}.npy", np.ascontiguousarray(array))
        np.save(staging / "item_ids.npy", np.asarray(bundle.item_ids, dtype=str))
        np.save(staging / "user_ids.npy", np.asarray(bundle.user_ids, dtype=str))
        bundle.items.to_parquet(staging / "items.parquet", index=False)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": bundle.kind,
            "config": bundle.config,
            "metrics": bundle.metrics,
            "n_items": bundle.n_items,
            "n_users": bundle.n_users,
            "arrays": {name: list(a.shape) for name, a in bundle.arrays.items()},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if path.exists():
            path.rmdir()
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "saved %s bundle (%d items, %d users) to %s",
        bundle.kind,
        bundle.n_items,
        bundle.n_users,
        path,
    )
    return path


def load_bundle(path: str | Path, mmap: bool = True) -> ServingBundle:
    """Load a bundle directory; large arrays are memory-mapped unless ``mmap=False``."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.exists():
        raise BundleError(f"{path} is not a recsys bundle (no {MANIFEST})")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {manifest.get('format_version')!r} is not supported "
            f"(this recsys reads format {FORMAT_VERSION})"
        )
    mode = "r" if mmap else None
    arrays = {}
    for name in manifest["arrays"]:
        file = path / "arrays" / f"{name}.npy"
        if not file.exists():
            raise BundleError(f"{path}: array {name!r} listed in the manifest is missing")
        arrays[name] = np.load(file, mmap_mode=mode, allow_pickle=False)
    return ServingBundle(
        kind=manifest["kind"],
        config=manifest["config"],
        arrays=arrays,
        item_ids=np.load(path / "item_ids.npy", allow_pickle=False).astype(object),
        user_ids=np.load(path / "user_ids.npy", allow_pickle=False).astype(object),
        items=pd.read_parquet(path / "items.parquet"),
        metrics=manifest.get("metrics", {}),
        manifest=manifest,
    )
