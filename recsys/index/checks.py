"""Argument checks shared by every vector index: ids, vectors, queries, k and exclusions.

Each check returns the normalised value (a list of ids, a float32 C-contiguous matrix, ...) or
raises an error that names the argument, the row and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

Id = str | int

_PREVIEW = 5


def _preview(values: Iterable[Any]) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:_PREVIEW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _PREVIEW else "")


def check_dim(dim: Any) -> int:
    """A positive vector dimension."""
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or int(dim) <= 0:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return int(dim)


def check_k(k: Any) -> int:
    """A positive number of results."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be a positive integer, got {type(k).__name__} {k!r}")
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    return int(k)


def check_id(value: Any, where: str = "id") -> Id:
    """One external id: a str or an int (numpy scalars unwrapped); bools and others are refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{where} must be a str or int, got {type(value).__name__} {value!r}")
    return value


def check_ids(ids: Any, what: str = "ids") -> list[Id]:
    """A sequence of distinct ids as a list of plain Python str/int."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise TypeError(f"{what} must be a sequence of ids (str or int), got {type(ids).__name__}")
    out = [check_id(value, f"{what}[{i}]") for i, value in enumerate(ids)]
    if len(set(out)) != len(out):
        seen: set[Id] = set()
        dupes = [v for v in out if v in seen or seen.add(v)]
        raise ValueError(f"{what} contains duplicate ids: {_preview(dict.fromkeys(dupes))}")
    return out


def _as_array(values: Any, what: str) -> np.ndarray:
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{what} could not be read as a numeric array: {exc}") from None
    if array.dtype.kind != "f":
        raise TypeError(
            f"{what} must hold floating-point numbers (float16/32/64), got dtype {array.dtype}"
        )
    return array


def _check_finite(matrix: np.ndarray, what: str, ids: list[Id] | None) -> None:
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        label = f" (id {ids[row]!r})" if ids is not None else ""
        raise ValueError(
            f"{what} row {row}{label} contains NaN or infinite values "
            f"({int(bad.sum())} bad row(s) in all)"
        )


def check_vectors(vectors: Any, dim: int, ids: list[Id] | None = None, what: str = "vectors"):
    """An (n, dim) finite float32 C-contiguous matrix, with n == len(ids) when ids are given."""
    array = _as_array(vectors, what)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, {dim}), got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, the index expects {dim}")
    if ids is not None and array.shape[0] != len(ids):
        raise ValueError(f"{what} has {array.shape[0]} rows but {len(ids)} ids were given")
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    _check_finite(matrix, what, ids)
    return matrix


def check_queries(queries: Any, dim: int) -> np.ndarray:
    """Queries as a (b, dim) finite float32 matrix; one 1-D query becomes a batch of one."""
    array = _as_array(queries, "queries")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"queries must be 1-D (dim,) or 2-D (b, {dim}), got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"queries have dimension {array.shape[1]}, the index expects {dim}")
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    _check_finite(matrix, "queries", None)
    return matrix


def _is_id_collection(value: Any) -> bool:
    return value is None or (
        isinstance(value, Iterable) and not isinstance(value, str | bytes | np.generic)
    )


def normalize_exclude(exclude: Any, n_queries: int) -> None | set[Id] | list[set[Id]]:
    """Exclusions as None, one shared set of ids, or one set per query.

    A ``set``/``frozenset`` (or any iterable of plain ids) is shared by all queries; a list or tuple
    of ``n_queries`` collections (``None`` for "nothing") is read per query. Ids the index does not
    hold are allowed (they cannot be returned anyway).
    """
    if exclude is None:
        return None
    if isinstance(exclude, str | bytes) or not isinstance(exclude, Iterable):
        raise TypeError(
            "exclude must be a collection of ids or one collection per query, "
            f"got {type(exclude).__name__}"
        )
    if isinstance(exclude, set | frozenset):
        return {check_id(v, "exclude id") for v in exclude}
    items = list(exclude)
    if items and all(_is_id_collection(v) for v in items):
        if len(items) != n_queries:
            raise ValueError(
                f"exclude has {len(items)} per-query collections but there are {n_queries} queries"
            )
        return [
            set() if row is None else {check_id(v, f"exclude[{i}] id") for v in row}
            for i, row in enumerate(items)
        ]
    return {check_id(v, "exclude id") for v in items}
