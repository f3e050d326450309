"""Remove erased users from a serving bundle directory (:mod:`recsys.bundle`) on disk.

A bundle holds per-user rows in three shapes: the id map ``user_ids.npy``, row-aligned arrays
(``arrays/user_*.npy`` with one row per user, e.g. ``user_vectors``) and CSR families
(``arrays/<prefix>indptr.npy`` with ``n_users + 1`` offsets plus every ``<prefix>*`` array with
one entry per stored event, e.g. the purchase histories). The erased users' rows are cut out of
all of them (the other users keep their rows, in order, so the bundle still loads and answers
the same for them) and ``mean_user`` is recomputed from the remaining vectors.

The scrubbed bundle is built in a sibling directory (unchanged files hard-linked, not copied)
and swapped in with two renames; the old directory is then deleted, so no file under the
bundle path holds the erased rows afterwards. A reader sees the old bundle, the new one, or
(for an instant) no directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from recsys.bundle import MANIFEST
from recsys.store.erasure import user_hash

logger = logging.getLogger(__name__)

USER_IDS = "user_ids.npy"


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is a bundle directory with a user id map."""
    return (path / MANIFEST).is_file() and (path / USER_IDS).is_file()


def find_bundles(root: Path) -> list[Path]:
    """Every bundle directory under ``root`` (``root`` itself included), sorted."""
    if not root.is_dir():
        return []
    found = {m.parent for m in root.rglob(MANIFEST) if is_bundle(m.parent)}
    return sorted(p for p in found if not p.name.startswith("."))


def erased_rows(path: Path, hashes: Collection[str], hash_id: Callable = user_hash) -> np.ndarray:
    """Indexes of the users of bundle ``path`` whose hashed id is in ``hashes``."""
    ids = np.load(path / USER_IDS, allow_pickle=False)
    return np.flatnonzero([hash_id(str(u)) in hashes for u in ids])


def _csr_families(arrays: dict[str, np.ndarray], n_users: int) -> dict[str, list[str]]:
    """``{indptr name: [value array names]}`` of every per-user CSR family."""
    out = {}
    for name, array in arrays.items():
        if name.endswith("indptr") and array.ndim == 1 and len(array) == n_users + 1:
            prefix, total = name[: -len("indptr")], int(array[-1]) if len(array) else 0
            out[name] = [
                other
                for other, values in arrays.items()
                if other != name and other.startswith(prefix) and values.ndim >= 1
                and len(values) == total
            ]  # fmt: skip
    return out


def _scrubbed_arrays(
    arrays: dict[str, np.ndarray], n_users: int, drop: np.ndarray
) -> dict[str, np.ndarray]:
    keep = np.ones(n_users, dtype=bool)
    keep[drop] = False
    changed: dict[str, np.ndarray] = {}
    for indptr_name, members in _csr_families(arrays, n_users).items():
        indptr = np.asarray(arrays[indptr_name])
        lengths = np.diff(indptr)
        entry_keep = np.repeat(keep, lengths)
        new_indptr = np.zeros(int(keep.sum()) + 1, dtype=indptr.dtype)
        np.cumsum(lengths[keep], out=new_indptr[1:])
        changed[indptr_name] = new_indptr
        for name in members:
            changed[name] = np.asarray(arrays[name])[entry_keep]
    for name, array in arrays.items():
        if name.startswith("user_") and array.ndim >= 1 and len(array) == n_users:
            changed[name] = np.asarray(array)[keep]
    if "mean_user" in arrays and "user_vectors" in changed:
        remaining = changed["user_vectors"]
        mean = remaining.mean(axis=0) if len(remaining) else np.zeros_like(arrays["mean_user"])
        changed["mean_user"] = mean.astype(arrays["mean_user"].dtype)
    return changed


def scrub_bundle(path: str | Path, hashes: Collection[str]) -> dict | None:
    """Cut the users whose :func:`~recsys.store.erasure.user_hash` is in ``hashes`` out of the
    bundle directory ``path``.

    Parameters
    ----------
    path : str or Path
        A bundle directory.
    hashes : collection of str
        Hashes of the erased users.

    Returns
    -------
    dict or None
        ``{"path", "rows_removed", "files"}`` (files rewritten, relative to ``path``), or None
        when none of the users is in the bundle (nothing is written then).
    """
    path = Path(path)
    drop = erased_rows(path, hashes)
    if not len(drop):
        return None
    manifest = json.loads((path / MANIFEST).read_text())
    ids = np.load(path / USER_IDS, allow_pickle=False)
    arrays = {
        name: np.load(path / "arrays" / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        for name in manifest.get("arrays", {})
    }
    changed = _scrubbed_arrays(arrays, len(ids), drop)
    keep = np.ones(len(ids), dtype=bool)
    keep[drop] = False
    manifest["n_users"] = int(keep.sum())
    manifest["arrays"] = {
        name: list(changed.get(name, array).shape) for name, array in arrays.items()
    }
    manifest["scrubbed_users"] = int(manifest.get("scrubbed_users", 0)) + len(drop)
    files = [USER_IDS, MANIFEST, *(f"arrays/{name}.npy" for name in sorted(changed))]
    _swap_in(path, files, lambda staging: _write(staging, ids[keep], changed, manifest))
    logger.info("scrubbed %d user(s) from bundle %s", len(drop), path)
    return {"path": str(path), "rows_removed": int(len(drop)), "files": files}


def _write(staging: Path, ids: np.ndarray, changed: dict, manifest: dict) -> None:
    np.save(staging / USER_IDS, np.asarray(ids, dtype=str))
    for name, array in changed.items():
        np.save(staging / "arrays" / f"{name}.npy", np.ascontiguousarray(array))
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _swap_in(path: Path, rewritten: list[str], write: Callable[[Path], None]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.scrub-", dir=path.parent))
    trash = staging.with_name(staging.name + "-old")
    try:
        for source in path.rglob("*"):
            rel = source.relative_to(path)
            target = staging / rel
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif str(rel) not in rewritten:
                target.parent.mkdir(parents=True, exist_ok=True)
                try:  # unchanged files hold no per-user rows: share them, do not copy
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)
        (staging / "arrays").mkdir(exist_ok=True)
        write(staging)
        os.rename(path, trash)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if trash.exists() and not path.exists():
            os.rename(trash, path)
        raise
    shutil.rmtree(trash, ignore_errors=True)
