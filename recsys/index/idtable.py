"""Two-way map between external ids (str/int) and the int64 slots a backend stores vectors under.

A slot is a FAISS label or a row of the torch tensor. Lookups in both directions are vectorised:
``ids_at`` turns a (b, k) matrix of slots into a (b, k) object array of ids in one numpy call.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from recsys.index.checks import Id


class IdTable:
    """Ids by slot (a growable object array) and slots by id (a dict)."""

    def __init__(self) -> None:
        self._slot_of: dict[Id, int] = {}
        self._id_at = np.full(16, None, dtype=object)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, value: object) -> bool:
        try:
            return value in self._slot_of
        except TypeError:  # unhashable
            return False

    @property
    def capacity(self) -> int:
        """Number of slots the reverse map can hold without growing."""
        return len(self._id_at)

    def slot(self, value: Id) -> int:
        """The slot of one id (KeyError when unknown)."""
        return self._slot_of[value]

    def lookup(self, values: Iterable[Id]) -> np.ndarray:
        """Slots of ``values`` as int64, -1 for ids the table does not hold."""
        get = self._slot_of.get
        return np.fromiter((get(v, -1) for v in values), dtype=np.int64)

    def ids_at(self, slots: np.ndarray) -> np.ndarray:
        """Ids at ``slots`` (any shape) as an object array; None where the slot is -1 or empty."""
        slots = np.asarray(slots, dtype=np.int64)
        valid = (slots >= 0) & (slots < len(self._id_at))
        out = self._id_at[np.where(valid, slots, 0)]
        out[~valid] = None
        return out

    def assign(self, values: list[Id], slots: np.ndarray) -> None:
        """Map each id to its slot (ids must not be held already; slots must be free)."""
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots) and int(slots.max()) >= len(self._id_at):
            grown = max(int(slots.max()) + 1, 2 * len(self._id_at))
            id_at = np.full(grown, None, dtype=object)
            id_at[: len(self._id_at)] = self._id_at
            self._id_at = id_at
        boxed = np.empty(len(values), dtype=object)
        boxed[:] = values
        self._id_at[slots] = boxed
        self._slot_of.update(zip(values, slots.tolist(), strict=True))

    def drop(self, values: list[Id]) -> np.ndarray:
        """Forget ``values`` (all must be held) and return the slots they had."""
        slots = np.fromiter((self._slot_of.pop(v) for v in values), dtype=np.int64)
        self._id_at[slots] = None
        return slots

    def move(self, old: np.ndarray, new: np.ndarray) -> None:
        """Move the ids at slots ``old`` to the free slots ``new`` (row compaction)."""
        old = np.asarray(old, dtype=np.int64)
        new = np.asarray(new, dtype=np.int64)
        moved = self._id_at[old]
        self._id_at[old] = None
        self._id_at[new] = moved
        self._slot_of.update(zip(moved.tolist(), new.tolist(), strict=True))

    def items(self) -> tuple[list[Id], np.ndarray]:
        """All held ids and their slots, in slot order."""
        held = np.flatnonzero(np.not_equal(self._id_at, None))
        return self._id_at[held].tolist(), held.astype(np.int64)

    def clear(self) -> None:
        """Forget everything."""
        self._slot_of.clear()
        self._id_at = np.full(16, None, dtype=object)
