"""The input checks shared by the twin scorers (batched torch and single-request numpy).

``BlendScorer``, ``RequestScorer``, ``CoVisitationModel`` and ``EventWeighting`` take the same
kinds of input (item and user indices, baskets, ``k``, per-event timestamps and types); they
check them here, so that the twins refuse the same input with the same message.
"""

from __future__ import annotations

import numpy as np

from recsys.data.frame import pd
from recsys.data.schemas import EVENT_TYPES
from recsys.errors import InvalidInputError


def check_indices(indices, n: int, what: str = "item indices") -> np.ndarray:
    """``indices`` as a flat int64 array, refused unless every entry is in ``[0, n)``.

    Parameters
    ----------
    indices : array-like of int
        Item (or user) indices; a torch tensor is read on the host.
    n : int
        The number of valid indices.
    what : str
        How the error message names the input (e.g. ``"candidate item indices"``).

    Raises
    ------
    InvalidInputError
        When an index is negative or ``>= n``.
    """
    if hasattr(indices, "detach"):  # a torch tensor, possibly on the GPU
        indices = indices.detach().cpu().numpy()
    array = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(array) and (array.min() < 0 or array.max() >= n):
        raise InvalidInputError(f"{what} must be in [0, {n})")
    return array


def check_user(user, n_users: int) -> int:
    """A known user's index as an int, refused unless it is in ``[0, n_users)``."""
    user = int(user)
    if not 0 <= user < n_users:
        raise InvalidInputError(f"user index {user} is outside [0, {n_users})")
    return user


def check_basket(basket, n_items: int) -> np.ndarray:
    """The distinct items of a cross-sell basket (sorted int64); refuses an empty basket."""
    items = np.unique(np.asarray(basket, dtype=np.int64).reshape(-1))
    if len(items) == 0:
        raise InvalidInputError("cross-sell needs a non-empty basket")
    return check_indices(items, n_items, "basket item indices")


def check_k(k: int) -> int:
    """``k`` (how many results) as an int, refused unless positive."""
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    return int(k)


def check_event_arrays(n: int, times: np.ndarray, type_weights: np.ndarray) -> None:
    """Refuse per-event ``timestamps`` / ``event_types`` of the wrong length or non-finite times.

    ``times`` and ``type_weights`` are the arrays derived from them for ``n`` events.
    """
    if len(times) != n or len(type_weights) != n:
        raise InvalidInputError("timestamps and event_types must have one entry per event")
    if not np.isfinite(times).all():
        raise InvalidInputError("timestamps must be finite numbers (unix seconds)")


def event_type_positions(event_types, names) -> np.ndarray:
    """Position of each event's type in ``names`` (int64), refusing a type not among them."""
    types = np.asarray(event_types, dtype=object)
    positions = pd.Index(list(names)).get_indexer(types)  # hashing: fast on 50M object entries
    bad = positions < 0
    if bad.any():
        raise InvalidInputError(
            f"event_type {types[np.flatnonzero(bad)[0]]!r} is not a canonical event type "
            f"({', '.join(EVENT_TYPES)})"
        )
    return positions
