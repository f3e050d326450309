"""Problems found while coercing a column: which rows, and how to word each one.

A coercer reports :class:`Issue` s instead of raising, so that the same rules can fail a whole
file on its first bad row or reject bad records one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recsys.data.frame import pd


@dataclass
class Issue:
    """Rows of one column that share a kind of problem; ``describe(i)`` words row ``i``'s."""

    mask: np.ndarray
    describe: Callable[[int], str]

    def first(self) -> int:
        return int(np.argmax(self.mask))


@dataclass
class Coerced:
    """Canonical values of one column (placeholders where rows are bad) and the issues found."""

    values: pd.Series
    issues: list[Issue] = field(default_factory=list)


class Checks:
    """Collects issues so that each row is blamed for at most one problem per column."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.issues: list[Issue] = []

    def add(self, mask, problem: str | Callable[[int], str]) -> None:
        """Blame the rows in ``mask`` (not yet blamed) for ``problem`` (text or row -> text)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        mask = mask & ~self.bad
        if mask.any():
            self.bad |= mask
            describe = problem if callable(problem) else (lambda _i, text=problem: text)
            self.issues.append(Issue(mask, describe))


def kind_of(value) -> str:
    """How a value that has the wrong type is named in messages."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list | tuple | np.ndarray):
        return "a JSON array"
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    return f"a {type(value).__name__}"


def wrong_type(series: pd.Series, expected: str) -> Callable[[int], str]:
    """Words a wrong-type problem for row ``i`` of ``series``."""
    return lambda i: f"expected {expected}, got {kind_of(series.iloc[i])}"
