"""Turn raw tables (strings from CSV, typed columns from Parquet) into canonical frames.

The per-column rules live in :mod:`recsys.data.coerce` and are shared with per-record validation
(:mod:`recsys.data.records`). Here a table is all-or-nothing: the first bad row of the first bad
column is reported by its 1-based data row number, the column and the offending value, and nothing
is returned unless the whole table is valid.
"""

from __future__ import annotations

import numpy as np

from recsys.data.coerce import absent_column, coerce_column
from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.issues import Issue
from recsys.data.schemas import EVENTS_WITHOUT_ITEM, Schema


def raise_first(source: str, column: str, issues: list[Issue]) -> None:
    """Raise for the earliest bad row among ``issues`` (no-op when there are none)."""
    if not issues:
        return
    issue = min(issues, key=Issue.first)
    row = issue.first()
    more = int(issue.mask.sum()) - 1
    raise DataValidationError(source, issue.describe(row), row=row + 1, column=column, more=more)


def check_required_columns(columns, schema: Schema, source: str) -> None:
    """Fail with a message naming the missing column(s) and what the file does have."""
    present = [str(c) for c in columns]
    repeated = sorted({c for c in present if present.count(c) > 1 and c in schema.names})
    if repeated:
        raise DataValidationError(
            source,
            f"column {repeated[0]!r} appears more than once; keep one (or map only one to it)",
            row=0,
            column=repeated[0],
        )
    missing = [name for name in schema.required if name not in present]
    if not missing:
        return
    hint = ""
    if len(present) == 1:
        header = present[0]
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in header:
                hint = (
                    f"; the header looks separated by {name}: pass the matching delimiter "
                    f"(delimiter={delimiter!r} in Python, --delimiter {delimiter!r} on the CLI)"
                )
                break
    raise DataValidationError(
        source,
        f"missing required column(s) {', '.join(map(repr, missing))}; "
        f"found {', '.join(map(repr, present)) or 'none'}{hint}",
        row=0,
        column=missing[0],
    )


def table_issues(
    frame: pd.DataFrame, schema: Schema, skip: np.ndarray | None = None
) -> list[tuple[str, Issue]]:
    """Problems that involve more than one cell: an item-less event that needs an item, and
    duplicate keys. Rows in ``skip`` (already rejected) are ignored."""
    skip = np.zeros(len(frame), dtype=bool) if skip is None else skip
    found: list[tuple[str, Issue]] = []
    if schema.name == "events":
        needs_item = ~frame["event_type"].isin(EVENTS_WITHOUT_ITEM).to_numpy()
        empty = needs_item & (frame["item_id"] == "").to_numpy() & ~skip
        if empty.any():
            allowed = ", ".join(sorted(EVENTS_WITHOUT_ITEM))
            problem = f"empty item_id (only {allowed} events may have none)"
            found.append(("item_id", Issue(empty, lambda _i: problem)))
    for key in schema.key:
        values = frame[key]
        dup = values.where(~skip).duplicated().to_numpy() & ~skip
        if dup.any():
            text = values.to_numpy()
            found.append((key, Issue(dup, lambda i, t=text, k=key: f"duplicate {k} {t[i]!r}")))
    return found


def validate_frame(raw: pd.DataFrame, schema: Schema, source: str = "<frame>") -> pd.DataFrame:
    """Validate ``raw`` against ``schema`` and return a canonical frame.

    Columns outside the schema are dropped; optional columns that are absent get their default
    (or empty) value, so the result always has exactly ``schema.names``.

    Parameters
    ----------
    raw : DataFrame
        Text or typed columns named canonically (map source names first).
    schema : Schema
        ``EVENTS``, ``ITEMS`` or ``USERS``.
    source : str
        What the data is called in error messages (a file name).

    Raises
    ------
    DataValidationError
        On the first problem, naming ``source``, the 1-based row, the column and the value.
    """
    check_required_columns(raw.columns, schema, source)
    raw = raw.reset_index(drop=True)
    out = {}
    for col in schema.columns:
        if col.name in raw.columns:
            coerced = coerce_column(raw[col.name], col)
            raise_first(source, col.name, coerced.issues)
            out[col.name] = coerced.values
        else:
            out[col.name] = absent_column(col, len(raw), index=raw.index)
    frame = pd.DataFrame(out, index=raw.index, copy=False)  # no block consolidation copy
    for column, issue in table_issues(frame, schema):
        raise_first(source, column, [issue])
    return frame
