"""Validate JSON records one by one against a schema: keep the valid, reject the rest.

The rules are those of file loading (:mod:`recsys.data.coerce`), applied column-wise to the whole
batch at once; only the rejected records are visited one at a time to word their problems.
Events go through :mod:`recsys.data.event_check`, which adds the record-level rules (unknown
fields, storable text, the store's limits) around this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.data.coerce import absent_column, coerce_column
from recsys.data.frame import pd
from recsys.data.issues import Coerced
from recsys.data.schemas import EVENTS, Schema
from recsys.data.validate import table_issues


@dataclass(frozen=True)
class Rejection:
    """Why one record was rejected.

    Attributes
    ----------
    index : int
        0-based position of the record in the submitted list.
    field : str or None
        The (first) field at fault; ``None`` when the record as a whole is unusable.
    problem : str
        What is wrong; when several fields are bad, all problems, ``"; "``-separated.
    """

    index: int
    field: str | None
    problem: str

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "problem": self.problem}


def _any_issue(coerced: Coerced, n: int) -> np.ndarray:
    """Rows of a coerced column at fault for any reason."""
    bad = np.zeros(n, dtype=bool)
    for issue in coerced.issues:
        bad |= issue.mask
    return bad


def _column(records: Sequence, usable: np.ndarray, name: str) -> pd.Series:
    values = [r.get(name) if ok else None for r, ok in zip(records, usable, strict=True)]
    return pd.Series(values, dtype=object)


def validate_records(
    records: Sequence[dict], schema: Schema = EVENTS
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Validate a batch of JSON records against ``schema``, record by record.

    Ids may be strings or integers, timestamps ISO-8601 strings or unix seconds, JSON fields
    (``properties``) objects or JSON text. Fields outside the schema are ignored here (the event
    validator, :func:`recsys.data.event_check.validate_events`, refuses them).

    Parameters
    ----------
    records : sequence of dict
        The submitted records, in order.
    schema : Schema
        ``EVENTS`` (default), ``ITEMS`` or ``USERS``.

    Returns
    -------
    frame : DataFrame
        Canonical frame (exactly ``schema.names``) of the valid records, in submission order;
        its index holds each record's position in ``records``.
    rejections : list of Rejection
        One per invalid record, in submission order.
    """
    n = len(records)
    usable = np.fromiter((isinstance(r, dict) for r in records), dtype=bool, count=n)
    problems: list[list[tuple[str | None, str]]] = [[] for _ in range(n)]
    for i in np.flatnonzero(~usable):
        problems[i].append((None, f"must be a JSON object with fields {', '.join(schema.names)}"))
    bad = ~usable
    keys = set().union(*(r.keys() for r in records if isinstance(r, dict)))
    columns = {}
    for col in schema.columns:
        if col.name not in keys and not col.required:
            columns[col.name] = absent_column(col, n)
            continue
        absent = np.zeros(n, dtype=bool)
        if col.required and not col.nullable:
            absent = usable & np.fromiter(
                (not ok or col.name not in r for r, ok in zip(records, usable, strict=True)),
                dtype=bool,
                count=n,
            )
            for i in np.flatnonzero(absent):
                problems[i].append((col.name, f"missing required field {col.name!r}"))
        coerced = coerce_column(_column(records, usable, col.name), col)
        for issue in coerced.issues:
            for i in np.flatnonzero(issue.mask & usable & ~absent):
                problems[i].append((col.name, issue.describe(i)))
        bad |= absent | _any_issue(coerced, n)
        columns[col.name] = coerced.values
    frame = pd.DataFrame(columns, copy=False)
    for name, issue in table_issues(frame, schema, skip=bad):
        for i in np.flatnonzero(issue.mask):
            problems[i].append((name, issue.describe(i)))
            bad[i] = True
    rejections = []
    for i in np.flatnonzero(bad):
        (field, first), rest = problems[i][0], problems[i][1:]
        text = "; ".join([first] + [f"{f}: {p}" for f, p in rest])
        rejections.append(Rejection(int(i), field, text))
    return frame.loc[~bad], rejections
