"""Read events, items and users from CSV or Parquet into validated canonical frames."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.schemas import EVENTS, ITEMS, USERS, Schema
from recsys.data.validate import validate_frame

logger = logging.getLogger(__name__)

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


def _decode_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise DataValidationError(
            str(path),
            f"line {line} is not valid UTF-8 (byte 0x{byte} at offset {exc.start}); "
            "re-encode the file as UTF-8",
            row=max(line - 1, 1) if line > 1 else None,
        ) from None


def _read_csv(path: Path, delimiter: str | None) -> pd.DataFrame:
    text = _decode_utf8(path)
    if not text.strip():
        raise DataValidationError(str(path), "file is empty")
    sep = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = map(int, match.groups())
            raise DataValidationError(
                str(path),
                f"line {line} has {saw} fields where the header has {expected} "
                f"(delimiter {sep!r}; quote values that contain it)",
                row=line - 1,
            ) from None
        raise DataValidationError(str(path), f"cannot parse CSV: {exc}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataValidationError(str(path), f"cannot read Parquet: {exc}") from None


def read_raw(path: str | Path, delimiter: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV or Parquet file without validating it (text columns stay text)."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError(str(path), "file does not exist")
    if path.is_dir():
        raise DataValidationError(str(path), "is a directory, expected a CSV or Parquet file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, delimiter)
    raise DataValidationError(
        str(path), f"unsupported file type {suffix!r}; use .csv, .tsv, .parquet or .pq"
    )


def apply_column_map(
    frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str
) -> pd.DataFrame:
    """Rename source columns to canonical names (``{"customer": "user_id", ...}``)."""
    if not columns:
        return frame
    absent = [name for name in columns if name not in frame.columns]
    if absent:
        raise DataValidationError(
            source,
            f"column map names {', '.join(map(repr, absent))} but the file has "
            f"{', '.join(map(repr, frame.columns))}",
            column=absent[0],
        )
    return frame.rename(columns=dict(columns))


def load_table(
    path: str | Path,
    schema: Schema,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Read and validate one file against ``schema``; all rows or none."""
    raw = read_raw(path, delimiter)
    raw = apply_column_map(raw, columns, str(path))
    if raw.empty:
        raise DataValidationError(str(path), "file has a header but no rows")
    frame = validate_frame(raw, schema, str(path))
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
