"""Read events, items and users from CSV or Parquet into validated canonical frames.

A load is all-or-nothing: the file is checked completely and either every row comes back as a
canonical frame or a :class:`DataValidationError` names the file, the row and the column of the
first problem. Nothing is written anywhere, so a failed load leaves no partial import behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.readers import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    column_names,
    line_of_row,
    read_raw,
)
from recsys.data.schemas import EVENTS, ITEMS, USERS, Schema
from recsys.data.validate import check_required_columns, validate_frame

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "apply_column_map",
    "load_events",
    "load_items",
    "load_table",
    "load_users",
    "read_raw",
    "validate_file_frame",
]


def _check_column_map(names, columns: Mapping[str, str], source: str) -> None:
    absent = [name for name in columns if name not in names]
    if absent:
        raise DataValidationError(
            source,
            f"column map names {', '.join(map(repr, absent))} but the file has "
            f"{', '.join(map(repr, names))}",
            row=0,
            column=absent[0],
        )


def apply_column_map(
    frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str
) -> pd.DataFrame:
    """Rename source columns to canonical names (``{"customer": "user_id", ...}``)."""
    if not columns:
        return frame
    _check_column_map(list(frame.columns), columns, source)
    return frame.rename(columns=dict(columns))


def validate_file_frame(
    raw: pd.DataFrame,
    schema: Schema,
    path: str | Path,
    delimiter: str | None = None,
    header: bool = True,
) -> pd.DataFrame:
    """:func:`validate_frame` for rows read from ``path``; errors also name the file's line."""
    try:
        return validate_frame(raw, schema, str(path))
    except DataValidationError as error:
        if not error.row:
            raise
        raise error.at_line(line_of_row(path, error.row, delimiter, header)) from None


def load_table(
    path: str | Path,
    schema: Schema,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Read and validate one file against ``schema``; all rows or none.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.tsv``/``.txt`` or ``.parquet``/``.pq``.
    schema : Schema
        ``EVENTS``, ``ITEMS`` or ``USERS``.
    columns : mapping, optional
        ``{"source_name": "canonical_name"}`` for files that name their columns differently.
    delimiter : str, optional
        CSV field separator (default ``,``; tab for ``.tsv``).

    Raises
    ------
    DataValidationError
        Naming the file, the row and the column of the first problem.
    """
    source = str(path)
    columns = dict(columns or {})
    names = column_names(path, delimiter)
    _check_column_map(names, columns, source)
    canonical = [columns.get(name, name) for name in names]
    check_required_columns(canonical, schema, source)  # fail before reading a large file
    wanted = {name for name, canon in zip(names, canonical, strict=True) if canon in schema.names}
    raw = read_raw(path, delimiter, usecols=wanted).rename(columns=columns)
    if raw.empty:
        kind = "has a header but no rows" if Path(path).suffix.lower() in CSV_SUFFIXES else ""
        raise DataValidationError(source, f"file {kind or 'has no rows'}")
    frame = validate_file_frame(raw, schema, path, delimiter)
    logger.info("loaded %d %s from %s", len(frame), schema.name, path)
    return frame


def load_events(path, columns=None, delimiter=None) -> pd.DataFrame:
    """Events / interactions: ``user_id, item_id, timestamp`` plus optional columns."""
    return load_table(path, EVENTS, columns, delimiter)


def load_items(path, columns=None, delimiter=None) -> pd.DataFrame:
    """Item catalogue: ``item_id`` plus title, category, price, in_stock, attributes."""
    return load_table(path, ITEMS, columns, delimiter)


def load_users(path, columns=None, delimiter=None) -> pd.DataFrame:
    """Customers: ``user_id`` plus email, country, consents, attributes."""
    return load_table(path, USERS, columns, delimiter)
